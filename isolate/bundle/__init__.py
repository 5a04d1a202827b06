"""Bundle building: interpreter providers, ELF closure, install, launchers, archive."""
