"""Notifications (通知): the outbox, channels, subscriptions and templates.

Every domain writes events here (:func:`emit`, in its own transaction); only the sender job talks to the outside.
Domains import this package, never the other way round: the reminders a domain needs are registered with
:func:`cloudctl.notify.sender.reminder`.
"""

from cloudctl.notify.service import emit

__all__ = ["emit"]
