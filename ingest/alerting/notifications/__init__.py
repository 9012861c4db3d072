"""Notifications that reach a person: channels (email, Telegram, SMS, webhooks) behind one
interface (``channels.py``), texts in the person's language (``texts.py``, catalogues in
``locales/``), and the sender that works through the stored outbox and the escalation deadlines
(``sender.py``). Who is told of what (recipients, routes, escalation policies) and the outbox
itself are in PostgreSQL (``store/notifications.py``); docs/alerts.md, "Notifications"."""
