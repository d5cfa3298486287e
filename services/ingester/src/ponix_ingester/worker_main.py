"""Entry point of an ingester worker process: ``python -m ponix_ingester.worker_main``.

Run, never imported: nothing else imports it, so runpy finds it fresh. (``python -m
ponix_ingester.worker`` would warn, the package having imported that module already.)
"""

from ponix_ingester.worker import main

if __name__ == "__main__":
    main()
