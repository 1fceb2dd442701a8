"""`python -m flowdeck.metaflow_bridge FLOW_FILE run|resume ...`: the documented bridge command.

The bridge lives in `flowdeck.engines.metaflow_bridge`; this name is kept so the
command documented in the README keeps working from a terminal.
"""

import sys

from flowdeck.engines.metaflow_bridge import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
