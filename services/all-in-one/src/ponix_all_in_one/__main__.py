"""``ponix-all-in-one``: producer and ingester in one process."""

from __future__ import annotations

from ponix_all_in_one.app import run_all_in_one
from ponix_runner import run_main


def main() -> None:
    raise SystemExit(run_main(run_all_in_one))


if __name__ == "__main__":
    main()
