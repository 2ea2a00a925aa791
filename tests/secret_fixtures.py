"""Fake secrets of every kind the index redacts, each in a small source file with code around it.

Every secret is assembled at run time from pieces and seeded random characters, so that this
repository holds nothing a secret scanner would flag. Each case names the secret values that
must never be stored, indexed or sent, the function next to them that must still be found,
and the kind its redaction is reported as.
"""

from __future__ import annotations

import base64
import json
import random
import string

import attrs

_ALNUM = string.ascii_letters + string.digits
_UPPER = string.ascii_uppercase + string.digits
_B64 = string.ascii_letters + string.digits + "+/"
DASHES = "-" * 5


def rand(rng: random.Random, n: int, alphabet: str = _ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


@attrs.frozen
class Case:
    name: str  # also the file's stem
    path: str
    text: str
    secrets: tuple[str, ...]  # values that must appear nowhere in the index or its traffic
    function: str  # defined next to the secret: keyword search must still find it
    kinds: tuple[str, ...]  # how the redactions are reported, one per secret span


def _pem_lines(rng: random.Random, lines: int = 4) -> list[str]:
    return [rand(rng, 64, _B64) for _ in range(lines)]


def _python(name: str, function: str, assignment: str) -> str:
    return (f'"""Settings and helpers for the {name.replace("_", " ")} integration."""\n\n'
            f"{assignment}\n\n\n"
            f"def {function}(records, options=None):\n"
            f'    """Send every record to the {name.replace("_", " ")} service and count replies."""\n'
            f"    replies = [submit_record(record, options) for record in records]\n"
            f"    return len(replies)\n")


def cases(seed: int = 17) -> list[Case]:
    rng = random.Random(seed)
    out: list[Case] = []

    def pem(kind: str, label: str, headers: tuple[str, ...] = ()) -> None:
        body = _pem_lines(rng)
        block = "\n".join([f"{DASHES}BEGIN {label}{DASHES}", *headers, *body, f"{DASHES}END {label}{DASHES}"])
        name = f"{kind}_key"
        out.append(Case(name, f"keys/{name}.py", _python(name, f"load_{kind}_signing_material",
                                                         f'PRIVATE_KEY = """{block}"""'),
                        tuple(body), f"load_{kind}_signing_material", ("Private Key",)))

    pem("rsa", "RSA " + "PRIVATE KEY")
    pem("openssh", "OPENSSH " + "PRIVATE KEY")
    pem("pgp", "PGP " + "PRIVATE KEY BLOCK", ("Version: GnuPG v2", ""))
    # An EC key written on one line with \n escapes, as in JSON or an environment file.
    body = _pem_lines(rng, 3)
    label = "EC " + "PRIVATE KEY"
    escaped = "\\n".join([f"{DASHES}BEGIN {label}{DASHES}", *body, f"{DASHES}END {label}{DASHES}"])
    out.append(Case("ec_key", "keys/ec_key.py", _python("ec_key", "load_ec_signing_material",
                                                         f'PRIVATE_KEY = "{escaped}\\n"'),
                    tuple(body), "load_ec_signing_material", ("Private Key",)))

    key_id = "AK" + "IA" + rand(rng, 16, _UPPER)
    aws_secret = rand(rng, 40, _B64)
    out.append(Case("aws", "cloud/aws.py", _python(
        "aws", "upload_release_artifacts",
        f'client = make_client(\n    aws_access_key_id="{key_id}",\n    aws_secret_access_key="{aws_secret}",\n)'),
        (key_id, aws_secret), "upload_release_artifacts", ("AWS Access Key", "AWS Secret Access Key")))

    def token(name: str, function: str, value: str, kind: str, variable: str = "SERVICE_TOKEN") -> None:
        out.append(Case(name, f"services/{name}.py", _python(name, function, f'{variable} = "{value}"'),
                        (value,), function, (kind,)))

    token("github_classic", "open_github_pull_request", "gh" + "p_" + rand(rng, 36), "GitHub Token")
    token("github_fine_grained", "list_github_workflow_runs", "github" + "_pat_" + rand(rng, 82, _ALNUM + "_"),
          "GitHub Token")
    token("gitlab", "trigger_gitlab_pipeline", "gl" + "pat-" + rand(rng, 20), "GitLab Token")
    token("slack", "post_slack_announcement",
          "xo" + "xb-" + rand(rng, 12, string.digits) + "-" + rand(rng, 13, string.digits) + "-" + rand(rng, 24),
          "Slack Token")
    token("stripe_secret", "refund_stripe_charge", "sk" + "_live_" + rand(rng, 24), "Stripe Access Key")
    token("stripe_restricted", "list_stripe_payouts", "rk" + "_live_" + rand(rng, 24), "Stripe Access Key")
    token("google", "geocode_shipping_address", "AI" + "za" + rand(rng, 35, _ALNUM + "-_"), "Google API Key")

    def b64url(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    jwt = ".".join([b64url({"alg": "HS256", "typ": "JWT"}), b64url({"sub": rand(rng, 10), "iat": 1700000000}),
                    rand(rng, 43, _ALNUM + "-_")])
    token("jwt", "call_billing_gateway", jwt, "JSON Web Token", variable="SESSION")

    # Random-looking values assigned to names that say what they are, in three languages.
    password = rand(rng, 6) + "#" + rand(rng, 6) + "!"
    token("db_password", "connect_reporting_database", password, "Secret Keyword", variable="db_password")
    api_token = rand(rng, 32, string.hexdigits.lower())
    token("auth_token", "refresh_partner_catalogue", api_token, "Secret Keyword", variable="auth_token")
    api_key = rand(rng, 28)
    out.append(Case("api_key", "web/api_key.js", (
        "// Client for the weather service.\n"
        f"const apiKey = '{api_key}';\n\n"
        "function fetchWeatherForecast(city) {\n"
        "  return request(`/forecast/${city}`, { headers: { 'X-Key': apiKey } });\n"
        "}\n\nmodule.exports = { fetchWeatherForecast };\n"),
        (api_key,), "fetchWeatherForecast", ("Secret Keyword",)))
    client_secret = rand(rng, 30)
    out.append(Case("client_secret", "auth/client_secret.go", (
        "package auth\n\n"
        "// ExchangeAuthorizationCode trades a login code for an access token.\n"
        "func ExchangeAuthorizationCode(code string) string {\n"
        f'\tclientSecret := "{client_secret}"\n'
        "\treturn postForm(code, clientSecret)\n"
        "}\n"),
        (client_secret,), "ExchangeAuthorizationCode", ("Secret Keyword",)))
    return out


# Lines that look like secrets to a careless rule and must be left alone.
BENIGN = (
    'password = "changeme"\n'
    'prompt = "Enter your password"\n'
    'secret_name = "database_password"\n'
    'token_type = "quoted-string"\n'
    'api_key = os.environ["API_KEY"]\n'
    'auth_url = "https://auth.example.com/oauth/token"\n'
    'password = f"{user}:{pw}"\n'
    'SERVICE_TOKEN = "read_from_vault()"\n'
    'db_password = "reporting_db_2"\n'
    'DOCS = "postgres://user:password@localhost/db"\n'
    'twilio_sid = "AC' + "x" * 32 + '"\n'
)
