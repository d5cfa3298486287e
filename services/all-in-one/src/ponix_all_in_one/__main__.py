"""``ponix-all-in-one``: producer and ingester in one process."""

from __future__ import annotations

from ponix_all_in_one.app import COMMAND, run_all_in_one


def main() -> None:
    COMMAND.run(run_all_in_one)


if __name__ == "__main__":
    main()
