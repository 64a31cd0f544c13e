"""Reads pushes, their jobs and some job logs from a Treeherder server with the official
client (treeherder-client, `thclient`), and prints what it read as JSON on stdout.

Used by tests/treeherder.rs against the Treeherder simulator:

    python read.py --server URL --project NAME --revision SHA [--revision SHA ...]
                   [--log-job ID ...]

For each revision: `get_pushes(project, revision=...)`, then for each push found
`get_jobs(project, push_id=..., count=None)` (which pages with count=2000&offset=...).
For each --log-job: `get_job_log_url(project, job_id=...)`.
"""

import argparse
import json
import logging
import sys

from thclient import TreeherderClient

JOB_FIELDS = (
    "id",
    "push_id",
    "job_type_name",
    "job_type_symbol",
    "platform",
    "state",
    "result",
    "start_timestamp",
    "end_timestamp",
    "task_id",
    "retry_id",
    "job_guid",
)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--revision", action="append", default=[])
    parser.add_argument("--log-job", action="append", default=[], type=int)
    args = parser.parse_args()

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    client = TreeherderClient(server_url=args.server)

    out = {"client_version": client.REQUEST_HEADERS["User-Agent"], "revisions": {}, "logs": {}}
    for revision in args.revision:
        pushes = client.get_pushes(args.project, revision=revision)
        found = []
        for push in pushes:
            jobs = client.get_jobs(args.project, push_id=push["id"], count=None)
            found.append(
                {
                    "push": push,
                    "jobs": [{field: job[field] for field in JOB_FIELDS} for job in jobs],
                }
            )
        out["revisions"][revision] = found
    for job_id in args.log_job:
        out["logs"][str(job_id)] = client.get_job_log_url(args.project, job_id=job_id)

    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
