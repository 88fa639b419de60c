"""What a drill prints: the faults it caused and the reconciliation."""

from __future__ import annotations

from dataclasses import dataclass, field

from .ledger import Reconciliation


@dataclass
class Report:
    """One drill's account of itself."""

    name: str
    did: list[str] = field(default_factory=list)
    reconciliation: Reconciliation | None = None
    seconds: float = 0.0
    attempts: int = 0  # sends tried, where a drill counts them (returned or raised)

    def __str__(self) -> str:
        lines = [f"{self.name} ({self.seconds:.0f} s)"]
        lines += [f"  - {line}" for line in self.did]
        if self.reconciliation is not None:
            lines.append(f"  = {self.reconciliation}")
        return "\n".join(lines)
