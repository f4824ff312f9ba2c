"""simple-salesforce, unmodified, against `ipguard sim --tls` (issue 13).

Every Salesforce call below is simple-salesforce's public API; the only other requests are
the sim's admin endpoints (/sim/...) that set the org up, as a person would in Setup.
Environment (set by ../run.sh): SIM_URL, SIM_KEY_FILE, SIM_CLIENT_ID, SIM_USERNAME;
REQUESTS_CA_BUNDLE trusts the sim's generated CA (certificate verification stays on).

simple-salesforce sends the JWT bearer token request to
`https://{instance_url or domain}.salesforce.com/services/oauth2/token`. Its `instance_url`
parameter (a My Domain prefix) is given the sim's host and path ending in `#`, so that the
fixed `.salesforce.com/...` suffix becomes a URL fragment, which HTTP clients never send. The
assertion's `aud` stays `https://login.salesforce.com` (domain `login`). Everything after the
login uses the `instance_url` the token response returns.
"""

import io
import os
import sys
import time
import traceback
import zipfile
from urllib.parse import urlparse

from importlib.metadata import version

import requests
from simple_salesforce import Salesforce

SIM_URL = os.environ["SIM_URL"]
KEY_FILE = os.environ["SIM_KEY_FILE"]
CLIENT_ID = os.environ["SIM_CLIENT_ID"]
USERNAME = os.environ["SIM_USERNAME"]
VERSION = "66.0"
HOST = urlparse(SIM_URL).netloc
NS = "http://soap.sforce.com/2006/04/metadata"


def admin(method, path, body=None):
    response = requests.request(method, SIM_URL + path, json=body, timeout=10)
    response.raise_for_status()
    return response.json() if response.status_code != 204 else None


def token_calls():
    return sum(1 for c in admin("GET", "/sim/calls") if c["operation"] == "token")


def login():
    return Salesforce(
        username=USERNAME,
        consumer_key=CLIENT_ID,
        privatekey_file=KEY_FILE,
        instance_url=f"{HOST}/services/oauth2/token#",
        version=VERSION,
    )


def package_zip(member, profile_body):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "package.xml",
            f'<?xml version="1.0" encoding="UTF-8"?><Package xmlns="{NS}"><types>'
            f"<members>{member}</members><name>Profile</name></types>"
            f"<version>{VERSION}</version></Package>",
        )
        archive.writestr(
            f"profiles/{member}.profile",
            f'<?xml version="1.0" encoding="UTF-8"?><Profile xmlns="{NS}">{profile_body}</Profile>',
        )
    buffer.seek(0)
    return buffer


def ip_range(start, end):
    return f"<loginIpRanges><endAddress>{end}</endAddress><startAddress>{start}</startAddress></loginIpRanges>"


def deploy_and_wait(sf, archive):
    """sf.deploy, then sf.checkDeployStatus until the deploy is done."""
    started = sf.deploy(archive, sandbox=True, rollbackOnError=True)
    assert started["asyncId"], started
    deadline = time.monotonic() + 20
    while True:
        status = sf.checkDeployStatus(started["asyncId"])
        if status["state"] in ("Succeeded", "SucceededPartial", "Failed", "Canceled"):
            return status
        assert time.monotonic() < deadline, f"deploy never finished: {status}"
        time.sleep(0.2)


def as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


STATE = {}


def check_login():
    sf = login()
    assert sf.sf_instance == HOST, sf.sf_instance
    assert sf.session_id.startswith("00D"), sf.session_id
    STATE["sf"] = sf


def check_describe():
    result = STATE["sf"].mdapi.describe_metadata()
    profile = [o for o in result.metadataObjects if o.xmlName == "Profile"]
    assert profile and profile[0].directoryName == "profiles", result


def check_list():
    mdapi = STATE["sf"].mdapi
    listed = mdapi.list_metadata([mdapi.ListMetadataQuery(type="Profile")])
    names = [p.fullName for p in listed]
    assert "Admin" in names and "Custom%3A Support" in names, names
    assert all(p.fileName.startswith("profiles/") for p in listed), listed[0]


def check_read():
    support = as_list(STATE["sf"].mdapi.Profile.read(["Custom%3A Support"]))[0]
    ranges = as_list(support.loginIpRanges)
    assert len(ranges) == 1 and ranges[0].startAddress == "198.51.100.0", support


def check_deploy():
    status = deploy_and_wait(STATE["sf"], package_zip("Standard", ip_range("192.0.2.20", "192.0.2.29")))
    assert status["state"] == "Succeeded", status
    standard = as_list(STATE["sf"].mdapi.Profile.read(["Standard"]))[0]
    ranges = as_list(standard.loginIpRanges)
    assert [(r.startAddress, r.endAddress) for r in ranges] == [("192.0.2.20", "192.0.2.29")], standard


def check_failed_deploy():
    # custom belongs before loginIpRanges in Profile's XSD sequence: Salesforce refuses it.
    body = ip_range("192.0.2.1", "192.0.2.1") + "<custom>false</custom>"
    status = deploy_and_wait(STATE["sf"], package_zip("Admin", body))
    assert status["state"] == "Failed", status
    errors = status["deployment_detail"]["errors"]
    assert len(errors) == 1 and "invalid at this location" in errors[0]["message"], errors


def check_query_paging():
    for n in range(1, 6):
        admin("PUT", "/sim/profiles/Admin/login-ip-ranges", [{"start": f"198.18.1.{n}", "end": f"198.18.1.{n}"}])
    admin("PUT", "/sim/settings", {"query_page_size": 2})
    sf = STATE["sf"]
    soql = "SELECT Id, Display, CreatedDate, CreatedBy.Username FROM SetupAuditTrail ORDER BY CreatedDate"
    first = sf.query(soql)
    assert first["done"] is False and len(first["records"]) == 2, first
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert len(second["records"]) == 2, second
    everything = sf.query_all(soql)
    assert len(everything["records"]) == first["totalSize"] >= 6, everything["totalSize"]
    assert all(r["CreatedBy"]["Username"] for r in everything["records"])


def check_session_refresh():
    sf = STATE["sf"]
    before = token_calls()
    admin("PUT", "/sim/faults", {"next_failures": ["invalid_session"]})
    result = sf.query("SELECT Id FROM SetupAuditTrail LIMIT 1")
    assert len(result["records"]) == 1, result
    after = token_calls()
    assert after == before + 1, f"token calls {before} -> {after}: one JWT re-login expected"


CHECKS = [
    ("JWT bearer login", check_login),
    ("describeMetadata", check_describe),
    ("listMetadata Profile", check_list),
    ("readMetadata Profile", check_read),
    ("deploy + completion", check_deploy),
    ("a failed deploy", check_failed_deploy),
    ("SOQL query with paging (nextRecordsUrl)", check_query_paging),
    ("session expiry and refresh (REST)", check_session_refresh),
]


def main():
    print(f"simple-salesforce {version('simple-salesforce')} against {SIM_URL}")
    passed = failed = 0
    for name, check in CHECKS:
        started = time.monotonic()
        try:
            check()
            passed += 1
            print(f"ok    {name} ({(time.monotonic() - started) * 1000:.0f} ms)")
        except Exception:  # noqa: BLE001 - every failure is reported, then counted
            failed += 1
            print(f"FAIL  {name}: {traceback.format_exc()}")
    print(f"simple-salesforce: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
