"""Run the whole seqattn study: `python sequence_attention.py --help` lists the options."""

import sys

from seqattn.study import main

if __name__ == "__main__":
    sys.exit(main())
