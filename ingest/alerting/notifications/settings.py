"""Settings of the notification channels and the outbox (environment ``QORGAU_NOTIFY_*``), part
of ``qorgau alerts``'s settings. A channel whose server is not set is off: its notifications
wait in the outbox (retried, never dropped) until it is configured or they grow too old."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from ingest.alerting.notifications.channels import SmsConfig, SmtpConfig, parse_template


class NotificationSettings(BaseModel):
    alerts_notify: bool = Field(
        default=True,
        description="send the notifications of the outbox (people, routes and escalation are "
        "managed through /api/v1/notifications); off: they stay queued",
    )
    notify_smtp_host: str = Field(default="", description="SMTP server for email; empty: off")
    notify_smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP port")
    notify_smtp_starttls: bool = Field(
        default=True, description="require STARTTLS (port 587); off only for a local relay"
    )
    notify_smtp_tls: bool = Field(default=False, description="implicit TLS (port 465)")
    notify_smtp_username: str = Field(default="", description="SMTP login; empty: none")
    notify_smtp_password: str = Field(default="", description="SMTP password")
    notify_smtp_from: str = Field(default="qorgau@localhost", description="sender address")
    notify_smtp_ca_file: str = Field(
        default="", description="extra CA certificate (PEM) to trust for the SMTP server"
    )
    notify_telegram_token: str = Field(default="", description="Telegram bot token; empty: off")
    notify_telegram_api_url: str = Field(
        default="https://api.telegram.org", description="Telegram Bot API base URL"
    )
    notify_sms_url: str = Field(default="", description="SMS gateway URL; empty: off")
    notify_sms_method: str = Field(default="POST", description="HTTP method of the gateway")
    notify_sms_encoding: str = Field(
        default="json", description="how the fields are sent: json, form or query"
    )
    notify_sms_fields: str = Field(
        default='{"to": "$phone", "text": "$text"}',
        description="JSON object of the request's fields; $phone, $text and $key are replaced",
    )
    notify_sms_headers: str = Field(
        default="{}", description="JSON object of extra headers (e.g. the provider's API key)"
    )
    notify_webhook_secret: str = Field(
        default="",
        description="HMAC key signing notifications to people's webhook addresses; empty: off",
    )
    notify_timeout_s: float = Field(default=10.0, gt=0, description="timeout of one send")
    notify_poll_s: float = Field(
        default=1.0, gt=0, description="how often the outbox and escalation deadlines are read"
    )
    notify_retry_max_s: float = Field(
        default=300.0, gt=0, description="longest wait between attempts of one notification"
    )
    notify_give_up_after_s: float = Field(
        default=86400.0,
        gt=0,
        description="a notification still failing this long after it was due is marked failed",
    )

    @field_validator("notify_sms_fields", "notify_sms_headers")
    @classmethod
    def _json_object(cls, value: str) -> str:
        parse_template("the value", value)
        return value

    @field_validator("notify_sms_encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        if value not in ("json", "form", "query"):
            raise ValueError("must be json, form or query")
        return value

    def smtp(self) -> SmtpConfig | None:
        if not self.notify_smtp_host:
            return None
        return SmtpConfig(
            host=self.notify_smtp_host,
            port=self.notify_smtp_port,
            starttls=self.notify_smtp_starttls,
            tls=self.notify_smtp_tls,
            username=self.notify_smtp_username,
            password=self.notify_smtp_password,
            sender=self.notify_smtp_from,
            timeout_s=self.notify_timeout_s,
            ca_file=self.notify_smtp_ca_file,
        )

    def sms(self) -> SmsConfig | None:
        if not self.notify_sms_url:
            return None
        return SmsConfig(
            url=self.notify_sms_url,
            method=self.notify_sms_method,
            encoding=self.notify_sms_encoding,
            fields=self.notify_sms_fields,
            headers=self.notify_sms_headers,
        )
