"""The reference's calibration: scripted honest members at each chat level, with the quota set to
exactly what that chat level costs the group, over many seeds. It shows how much talking a lake can
afford: a silent group lives off the lake, a group that posts and messages everyone must take so
much that the lake collapses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from simulator.domain import ModelRef
from simulator.scenarios.commons import dynamics
from simulator.scenarios.commons.game import game_from_members, member_list
from simulator.scenarios.commons.params import CommonsParams, Policy


@dataclass(frozen=True)
class ChatLevel:
    public: bool
    dms: int

    @property
    def name(self) -> str:
        if not self.public:
            return "silent"
        return "public" if self.dms == 0 else f"public+{self.dms}"

    @property
    def messages(self) -> int:
        """Messages per member per turn (the reference's stage number)."""
        return int(self.public) + self.dms


def chat_levels(members: int) -> list[ChatLevel]:
    """silent, public only, then public + k direct messages for k = 1 .. N-1."""
    return [ChatLevel(False, 0)] + [ChatLevel(True, k) for k in range(members)]


@dataclass
class Cell:
    members: int
    chat: str
    messages: int
    quota: float
    seeds: int
    collapsed_seeds: int
    mean_final_resource: float
    trajectories: list[list[float]] = field(default_factory=list)  # R per round start, per seed

    def summary(self) -> dict[str, object]:
        return {
            "members": self.members,
            "chat": self.chat,
            "messages_per_turn": self.messages,
            "quota": round(self.quota, 6),
            "seeds": self.seeds,
            "collapsed_seeds": self.collapsed_seeds,
            "mean_final_resource": round(self.mean_final_resource, 6),
        }


async def run_cell(
    members: int, level: ChatLevel, seeds: Iterable[int], rounds: int, base: CommonsParams
) -> Cell:
    quota = dynamics.calibration_quota(members, level.public, level.dms, base)
    params = base.model_copy(
        update={"rounds": rounds, "policy": base.policy.model_copy(update={"quota": quota})}
    )
    ref = ModelRef(model="dryrun", options={"policy": "commons.honest", "chat": level.name})
    finals, collapsed, paths = [], 0, []
    seeds = list(seeds)
    for seed in seeds:
        game = game_from_members(params, member_list(members, lambda _i: ref), seed)
        state = await game.play()
        collapsed += int(state.world.collapsed)
        finals.append(state.world.resource)
        paths.append([r.resource_start for r in state.rounds] + [state.world.resource])
    return Cell(
        members=members,
        chat=level.name,
        messages=level.messages,
        quota=quota,
        seeds=len(seeds),
        collapsed_seeds=collapsed,
        mean_final_resource=sum(finals) / len(finals) if finals else 0.0,
        trajectories=paths,
    )


def calibrate(
    members: Iterable[int] = range(2, 8),
    seeds: int = 20,
    rounds: int = 15,
    base: CommonsParams | None = None,
    levels: dict[int, list[ChatLevel]] | None = None,
) -> list[Cell]:
    """Run the sweep; ``levels`` restricts the chat levels per member count."""
    base = base or CommonsParams()

    async def sweep() -> list[Cell]:
        out = []
        for n in members:
            for level in (levels or {}).get(n) or chat_levels(n):
                out.append(await run_cell(n, level, range(seeds), rounds, base))
        return out

    return asyncio.run(sweep())


def plot(cells: list[Cell], path: Path) -> Path:
    """One panel per member count; a thin line per seed, one colour per chat level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = sorted({c.members for c in cells})
    cols = min(3, len(counts)) or 1
    rows = (len(counts) + cols - 1) // cols or 1
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, n in zip(axes.flat, counts, strict=False):
        mine = [c for c in cells if c.members == n]
        for i, cell in enumerate(mine):
            colour = cmap(i / max(len(mine) - 1, 1))
            for j, path_r in enumerate(cell.trajectories):
                ax.plot(
                    range(1, len(path_r) + 1),
                    path_r,
                    color=colour,
                    alpha=0.5,
                    linewidth=0.8,
                    label=f"[{cell.messages}, {cell.quota:.2f}]" if j == 0 else None,
                )
        ax.set_title(f"{n} members")
        ax.set_xlabel("round")
        ax.set_ylabel("resource at round start")
        ax.legend(title="[msgs, Q]", fontsize=7, title_fontsize=7)
    for ax in list(axes.flat)[len(counts) :]:
        ax.axis("off")
    fig.suptitle("Fair share at the minimal cost of each chat level")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def default_policy_for(quota: float) -> Policy:
    return Policy(quota=quota)
