"""`bootagent setup`: adopt a running ZFS-root system as it is (bootagent.setup.facts reads it,
bootagent.setup.inspect proposes, bootagent.setup.apply changes only what the proposal says)."""
