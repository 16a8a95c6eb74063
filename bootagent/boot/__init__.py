"""The early-boot side: kernel command line, devices, the recovery session and the hand-over to the root."""
