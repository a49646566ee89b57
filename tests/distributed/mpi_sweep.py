"""Run under ``mpiexec -n K``: a sweep as one MPI job — ``sweep_groups(2)`` splits the ranks
into two groups (MPI_Comm_split), each training the float64 Dense + Dropout model
data-parallel at its own learning rate; every rank also trains the same run alone
(``distribute="local:1"``). World rank 0 prints one JSON line: per group, its size, its
learning rate, the largest difference from the run alone over every step, the spread
between the group's ranks, and the final parameters' distance to the other group's."""

import json
import sys

import numpy as np
from mpi_equal import Record, data, dense_model

import numcnn
from numcnn.training.distributed import sweep_groups

LRS = [0.05, 0.2]


def run(lr, distribute):
    model = dense_model(seed=1, optimizer=numcnn.optimizers.SGD(lr=lr, momentum=0.9))
    model.trainer_params = lambda: list(model.trainable_params().values())
    rec = Record()
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=2, seed=5, verbose=0, callbacks=[rec],
              distribute=distribute)
    return np.array(rec.steps)


def main():
    from mpi4py import MPI

    world = MPI.COMM_WORLD
    g, comm = sweep_groups(len(LRS))
    got = run(LRS[g], comm)
    ref = run(LRS[g], "local:1")
    diff = float(np.abs(got - ref).max())
    spread = comm.comm.allreduce(float(np.abs(got - comm.comm.bcast(got, root=0)).max()),
                                 MPI.MAX)
    rows = world.gather({"group": g, "size": comm.size, "lr": LRS[g], "max_diff": diff,
                         "rank_spread": spread, "last": got[-1].tolist()}, root=0)
    if world.Get_rank() == 0:
        groups = {}
        for row in rows:
            groups.setdefault(row["group"], row)
        apart = float(np.abs(np.array(groups[0]["last"]) - np.array(groups[1]["last"])).max())
        for row in groups.values():
            row.pop("last")
        print(json.dumps({"groups": [groups[k] for k in sorted(groups)],
                          "worst": max(r["max_diff"] for r in rows), "apart": apart}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
