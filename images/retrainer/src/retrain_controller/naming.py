"""Kubernetes-safe names and label values derived from arbitrary model names.

Model names come from Prometheus labels and can hold any UTF-8. Job names must be DNS-1123 labels
(the Job controller copies the name into a pod label, so 63 characters at most) and label values
must match the label-value grammar. Whenever sanitising changes a value, a short hash of the
original is appended so that two different models never collide on the same name or value.
"""

import hashlib
import re

MAX_DNS_LABEL = 63
MAX_LABEL_VALUE = 63
HASH_LENGTH = 10

_DNS_INVALID = re.compile(r"[^a-z0-9-]+")
_LABEL_INVALID = re.compile(r"[^A-Za-z0-9_.-]+")
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def short_hash(*parts: str, length: int = HASH_LENGTH) -> str:
    """Stable hex digest of the parts; the separator keeps ("a/b", "c") apart from ("a", "b/c")."""
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()
    return digest[:length]


def dns_fragment(text: str) -> str:
    """Lower-case DNS-1123 fragment of text: invalid runs become one '-', no '-' at either end."""
    return _DNS_INVALID.sub("-", text.lower()).strip("-")


def is_dns_1123_label(name: str) -> bool:
    return len(name) <= MAX_DNS_LABEL and bool(DNS_1123_LABEL.match(name))


def is_label_value(value: str) -> bool:
    return len(value) <= MAX_LABEL_VALUE and bool(LABEL_VALUE.match(value))


def job_name(prefix: str, model_namespace: str, model_name: str, bucket: int) -> str:
    """`<prefix>-<model>-<hash>`: deterministic per model and cooldown bucket, at most 63 characters.

    The hash covers the model's namespace, its exact name and the bucket, so two models that
    sanitise to the same fragment still get different names, and a new bucket a new name.
    """
    suffix = short_hash(model_namespace, model_name, str(bucket))
    room = MAX_DNS_LABEL - len(prefix) - len(suffix) - 2
    model_part = dns_fragment(model_name)[: max(room, 0)].strip("-")
    parts = [prefix, model_part, suffix] if model_part else [prefix, suffix]
    return "-".join(parts)


def label_value(value: str) -> str:
    """A valid label value for value: itself when already valid, else a sanitised form plus a hash."""
    if is_label_value(value):
        return value
    suffix = short_hash(value)
    room = MAX_LABEL_VALUE - len(suffix) - 1
    cleaned = _LABEL_INVALID.sub("-", value)
    cleaned = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)[:room]
    cleaned = re.sub(r"[^A-Za-z0-9]+$", "", cleaned)
    return f"{cleaned}-{suffix}" if cleaned else suffix
