"""The harness of cipherstore's end-to-end suites and benchmarks: `Server` starts
`cipherstore serve` on loopback (fs, dispersed or cluster store) with users alice and bob
and a SoftHSM2 token of its own; `seaweed` runs SeaweedFS beside it."""

from .server import (USERS, Server, error_code, free_port, kms_default, memory_mib, protection_modes, refused_503,
                     until, wait_port)

__all__ = ["USERS", "Server", "error_code", "free_port", "kms_default", "memory_mib", "protection_modes", "refused_503",
           "until", "wait_port"]
