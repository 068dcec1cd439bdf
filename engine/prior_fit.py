"""python -m engine.prior_fit DATABASE BASIS_VERSION [--profiles]: a big community's prior
(engine.profiles fit_community_prior), fitted in a process of its own and written to stdout
as npz; with --profiles, a stored fit of each big profile that has none (engine.profiles
fit_profiles), and how many it fitted.

engine.profiles starts it when a community outgrows a thread: a minute of numpy and
Python there would hold the GIL the bot's event loop needs.
"""

from __future__ import annotations

import asyncio
import os
import sys

from engine import profiles
from engine import taste as tm
from engine.db import open_db
from engine.db import taste as q


async def _basis(path: str, version: int) -> tm.Basis:
    db = await open_db(path, read_only=True)
    try:
        return await profiles._basis_version(db, version)
    except profiles.TasteError:
        raise SystemExit(f"basis {version} is not in {path}") from None
    finally:
        await db.close()


def main() -> None:
    os.nice(10)  # background work: the bot's own process comes first for the CPU
    path, version = sys.argv[1], int(sys.argv[2])
    basis = asyncio.run(_basis(path, version))
    if sys.argv[3:] == ["--profiles"]:
        print(profiles.fit_profiles(path, basis))
        return
    prior = profiles.fit_community_prior(path, basis)
    sys.stdout.buffer.write(q.npz_blob(**prior.to_arrays()))


if __name__ == "__main__":
    main()
