"""Event (workspace, type, occurred_at) index becomes covering: (workspace, type, occurred_at, identity).

Segment conditions on events (``siyu.engagement.segments.compiler``) read, per event type and time window,
only the identity of each event; with the identity in the index they are index-only scans instead of bitmap
heap scans over the whole (time-unordered) events table. The identity is a last key column rather than a
PostgreSQL INCLUDE column so that SQLite's index covers too (same size on PostgreSQL, same scans). The new
index starts with the key of the one it replaces, so every query that used the old one can use it;
ingestion keeps the same number of event indexes (each entry 8 bytes wider).

On PostgreSQL both steps run CONCURRENTLY (the migration is not atomic): no lock blocks ingestion while the
index is built — on a large table it takes minutes. If a concurrent build fails it leaves an INVALID index:
drop ``event_type_time_cover`` and migrate again. SQLite builds the index the ordinary, locking way.
"""

from django.db import migrations, models
from django.db.migrations.operations import AddIndex, RemoveIndex


class _OnlineAddIndex(AddIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.add_index(model, self.index, concurrently=True)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.remove_index(model, self.index, concurrently=True)


class _OnlineRemoveIndex(RemoveIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = from_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            schema_editor.remove_index(model, index, concurrently=True)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = to_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            schema_editor.add_index(model, index, concurrently=True)


class Migration(migrations.Migration):
    atomic = False  # CREATE / DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ('customers', '0003_last_seen_touch'),
    ]

    operations = [
        _OnlineAddIndex(
            model_name='event',
            index=models.Index(fields=['workspace', 'type', 'occurred_at', 'identity'], name='event_type_time_cover'),
        ),
        _OnlineRemoveIndex(
            model_name='event',
            name='customers_e_workspa_48f0a1_idx',
        ),
    ]
