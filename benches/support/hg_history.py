"""Generates the hg benchmark's central repository in one process with Mercurial's own
API (one transaction, in-memory commits): minutes for 100,000 commits where `hg import`
of generated patches takes hours.

usage: python3 hg_history.py REPO FILES FILES_PER_DIR LINES_PER_FILE HISTORY_FILES COMMITS

The same content as benches/landing.rs's git generator: one commit adding every file
(`dNN/fNNN.txt`, LINES_PER_FILE lines `PATH line N`), then COMMITS-1 commits; commit k
sets file (k-1) % HISTORY_FILES to its original content plus `changed by commit k`.
"""

import sys

from mercurial import context, hg, ui as uimod


def main():
    repo_path, files, per_dir, lines, history_files, commits = sys.argv[1:]
    files, per_dir, lines = int(files), int(per_dir), int(lines)
    history_files, commits = int(history_files), int(commits)

    def path(index):
        return b"d%02d/f%03d.txt" % (index // per_dir, index % per_dir)

    def original(index):
        p = path(index)
        return b"".join(b"%s line %d\n" % (p, n) for n in range(1, lines + 1))

    ui = uimod.ui.load()
    ui.setconfig(b"ui", b"quiet", b"true")
    repo = hg.repository(ui, repo_path.encode(), create=True)
    user = b"Bench Author <author@example.com>"
    with repo.wlock(), repo.lock(), repo.transaction(b"bench-history"):
        contents = {path(i): original(i) for i in range(files)}

        def initial(repo, memctx, p):
            return context.memfilectx(repo, memctx, p, contents[p])

        parent = context.memctx(
            repo,
            (repo.nullid, repo.nullid),
            b"Initial import",
            sorted(contents),
            initial,
            user=user,
            date=(1600000000, 0),
        ).commit()
        for k in range(1, commits):
            index = (k - 1) % history_files
            p = path(index)
            data = original(index) + b"changed by commit %d\n" % k

            def one(repo, memctx, name, data=data):
                return context.memfilectx(repo, memctx, name, data)

            parent = context.memctx(
                repo,
                (parent, repo.nullid),
                b"Change %s (commit %d)" % (p, k),
                [p],
                one,
                user=user,
                date=(1600000000 + 60 * k, 0),
            ).commit()
            if k % 10000 == 0:
                sys.stderr.write("%d commits\n" % k)


main()
