from __future__ import annotations

from gateway.cli import main

if __name__ == "__main__":  # not when a sender process (spawn) imports it as __mp_main__
    main()
