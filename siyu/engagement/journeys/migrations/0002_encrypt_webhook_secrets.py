"""Encrypt webhook signing secrets stored in clear in drafts and activated versions (see ``webhook_secrets``)."""

from django.db import migrations


def _seal_in_place(definition) -> bool:
    from siyu.engagement.journeys.webhook_secrets import encrypt

    changed = False
    steps = definition.get("steps") if isinstance(definition, dict) else None
    for step in steps if isinstance(steps, list) else []:
        if not isinstance(step, dict) or "secret" not in step:
            continue
        plain = step.pop("secret")
        if step.get("type") == "webhook" and isinstance(plain, str) and plain:
            step["secret_enc"] = encrypt(plain)
        changed = True
    return changed


def encrypt_secrets(apps, schema_editor):
    for model_name in ("Journey", "JourneyVersion"):
        model = apps.get_model("engagement_journeys", model_name)
        for row in model.objects.only("pk", "definition").iterator():
            if _seal_in_place(row.definition):
                row.save(update_fields=["definition"])


class Migration(migrations.Migration):
    dependencies = [("engagement_journeys", "0001_initial")]
    operations = [migrations.RunPython(encrypt_secrets, migrations.RunPython.noop)]
