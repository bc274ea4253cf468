"""chillybin's history: every event the bin records, in its rotated journal."""


class BinHistory:
    def __init__(self, journal):
        self.journal = journal

    def record(self, wall, kind, **fields):
        """Append one event; fields that are None are left out."""
        return self.journal.append({'wall': wall, 'kind': kind,
                                    **{k: v for k, v in fields.items() if v is not None}})

    def recent(self, limit=50, kind=None):
        return self.journal.recent(limit, kind)
