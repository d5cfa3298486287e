"""Entry point of a worker process: ``python -m ponix_workers`` (the pool starts it).

The package does not import this module, so runpy finds it fresh (``python -m`` on a module the
package had already imported would warn and run a second copy of it).
"""

from ponix_workers.worker import main

if __name__ == "__main__":
    main()
