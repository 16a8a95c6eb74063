"""Export and import of boot environments as ZFS's own send streams: to a file, standard output or a
storage host over ssh (a ZFS pool there; receive resume tokens, incremental sends, raw sends of encrypted
datasets), each checked against a manifest before anything is received."""
