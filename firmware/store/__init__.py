"""Storage both services share: crash-safe TinyDB, numbered migrations, rotated journals."""
from .atomic import AtomicJSONStorage, StorageCorrupt, open_db, transaction
from .journal import Journal
from .migrations import DatabaseTooNew, Migration, migrate, schema_version

__all__ = ['AtomicJSONStorage', 'StorageCorrupt', 'open_db', 'transaction', 'Journal',
           'DatabaseTooNew', 'Migration', 'migrate', 'schema_version']
