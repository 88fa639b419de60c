"""The ``taskcore`` command line and the process management behind ``taskcore worker``."""
