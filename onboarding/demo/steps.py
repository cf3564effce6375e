"""Where a track goes next, read from its definition: the demo scripts the shipped definitions
without naming their states."""

from __future__ import annotations

from workflows.model import Definition, TransitionDef


class Progress:
    def __init__(self, defn: Definition) -> None:
        self.defn = defn
        self.dist = {defn.initial: 0}
        queue = [defn.initial]
        while queue:
            s = queue.pop(0)
            for t in defn.transitions_from(s):
                if t.dest not in self.dist:
                    self.dist[t.dest] = self.dist[s] + 1
                    queue.append(t.dest)

    def key(self, state: str) -> tuple[int, int]:
        return self.defn.bucket_rank(state), self.dist.get(state, 0)


def forward(defn: Definition, state: str, max_rank: int | None = None) -> list[TransitionDef]:
    """Transitions that take a track further along, in declared order: to a state of a later
    bucket or further from the start, never to a final state outside the last bucket (a
    cancellation), and never one only the import may fire."""
    p = Progress(defn)
    out = []
    last = len(defn.buckets) - 1
    for t in defn.transitions_from(state):
        dest = defn.state(t.dest)
        if p.key(t.dest) <= p.key(state):
            continue
        if dest.final and defn.buckets and defn.bucket_rank(t.dest) != last:
            continue
        if dest.final and not defn.buckets and any(f in defn.fields for f in t.requires):
            continue  # a withdrawal with a reason
        if max_rank is not None and defn.bucket_rank(t.dest) > max_rank:
            continue
        if [r for r in t.roles if r != "importer"]:
            out.append(t)
    return out


def by_system(defn: Definition, state: str) -> list[TransitionDef]:
    """The transition the system itself fires (a KLIK task's default answer)."""
    return [t for t in defn.transitions_from(state) if "system" in t.roles]


def happy_path(defn: Definition) -> list[str]:
    """The states a track passes on its way forward from the start to a good end."""
    path = [defn.initial]
    while not defn.state(path[-1]).final:
        ahead = forward(defn, path[-1])
        if not ahead:
            break
        path.append(ahead[0].dest)
    return path
