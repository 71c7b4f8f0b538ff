"""The operator's inventory file: TOML and CSV forms, defaults, strict errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from novacron.coordinator.placement.inventory_file import (
    HostEntry,
    InventoryFile,
    load_inventory_file,
)
from novacron.protos.runtime.tomlconfig import ConfigError

NOW = dt.datetime(2025, 3, 15, tzinfo=dt.UTC).timestamp()

FULL = """
[defaults]
carbon_g_per_kwh = 320
compliance = ["soc2"]
labels = { site = "fra1", tier = "silver" }
cost_per_hour = 0.9

[hosts."node-1"]
rack = "r12"
zone = "zone-a"
aggregates = ["ssd", "gpu"]
labels = { tier = "gold" }
compliance = ["pci-dss", "soc2"]
maintenance = true
cordoned = false
max_vms = 40
power_idle_watts = 120
power_max_watts = 450.5
purchase_date = 2021-03-15
nic_speed_mbps = 25000
rack_position_u = 17
vcpus_total = 60

[hosts."node-2"]
hardware_age_years = 1.5
cost_per_hour = 1.25
"""


def write(tmp_path: Path, text: str, name: str = "inventory.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, name: str = "inventory.toml") -> InventoryFile:
    return load_inventory_file(write(tmp_path, text, name), now=NOW)


def error(tmp_path: Path, text: str, name: str = "inventory.toml") -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, name)
    return str(caught.value)


def test_full_file_with_defaults(tmp_path: Path) -> None:
    inventory = load(tmp_path, FULL)
    node1 = inventory.entry("node-1")
    assert node1.rack == "r12" and node1.zone == "zone-a"
    assert node1.aggregates == ("ssd", "gpu")
    assert node1.compliance == ("pci-dss", "soc2")
    assert dict(node1.labels) == {"site": "fra1", "tier": "gold"}  # merged per label key
    assert node1.maintenance is True and node1.cordoned is False
    numbers = dict(node1.numbers)
    assert numbers.pop("hardware_age_years") == pytest.approx(4.0, abs=0.01)
    assert numbers == {
        "carbon_g_per_kwh": 320.0,
        "cost_per_hour": 0.9,
        "max_vms": 40.0,
        "power_idle_watts": 120.0,
        "power_max_watts": 450.5,
        "nic_speed_mbps": 25000.0,
        "rack_position_u": 17.0,  # an extra numeric column
        "vcpus_total": 60.0,
    }
    node2 = inventory.entry("node-2")
    assert node2.numbers["cost_per_hour"] == 1.25  # the host's value wins
    assert node2.compliance == ("soc2",) and node2.rack is None and node2.maintenance is None
    # A host the file does not list gets the defaults.
    assert inventory.entry("elsewhere") == HostEntry().over(inventory.defaults)
    assert inventory.entry("elsewhere").numbers["carbon_g_per_kwh"] == 320.0
    assert inventory.number_keys() == (
        "carbon_g_per_kwh",
        "cost_per_hour",
        "hardware_age_years",
        "max_vms",
        "nic_speed_mbps",
        "power_idle_watts",
        "power_max_watts",
        "rack_position_u",
        "vcpus_total",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[hosts.a]\nowner = "ops"', "hosts.a.owner: unknown key with a str value"),
        ("[hosts.a]\nmax_vms = 2.5", "hosts.a.max_vms: expected an integer, got float 2.5"),
        ("[hosts.a]\nmax_vms = 0", "hosts.a.max_vms: must be >= 1"),
        ('[hosts.a]\nmaintenance = "yes"', "hosts.a.maintenance: expected true or false"),
        ('[hosts.a]\naggregates = "ssd"', "hosts.a.aggregates: expected a list"),
        ("[hosts.a]\naggregates = [1]", "hosts.a.aggregates[0]: expected a string"),
        ("[hosts.a]\nlabels = { tier = 1 }", "hosts.a.labels.tier: expected a string"),
        ("[hosts.a]\nlabels = 3", "hosts.a.labels: expected a table"),
        ("[hosts.a]\npower_idle_watts = -5", "hosts.a.power_idle_watts: must be >= 0"),
        ('[hosts.a]\npower_idle_watts = "5"', "hosts.a.power_idle_watts: expected a number"),
        ("[hosts.a]\npower_idle_watts = nan", "hosts.a.power_idle_watts: expected a finite"),
        ("[hosts.a]\nweird = inf", "hosts.a.weird: expected a finite number"),
        ("[hosts.a]\nvcpus_used = 3", "hosts.a.vcpus_used: computed from the live fleet"),
        (
            "[hosts.a]\npurchase_date = 2020-01-01\nhardware_age_years = 5",
            "hosts.a.purchase_date: give purchase_date or hardware_age_years, not both",
        ),
        ("[hosts.a]\npurchase_date = 2030-01-01", "hosts.a.purchase_date: date 2030-01-01 is in"),
        ('[hosts.a]\npurchase_date = "last year"', "hosts.a.purchase_date: expected a date"),
        ("[hosts]\na = 3", "hosts.a: expected a table"),
        ("[defaults]\nrack = 3", "defaults.rack: expected a string"),
        ("[host.a]\nrack = 'r1'", "host: unknown table (known: defaults, hosts)"),
        ("[hosts.a\n", "not valid TOML"),
    ],
)
def test_toml_errors_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    text_of_error = error(tmp_path, text)
    assert text_of_error.startswith(str(tmp_path / "inventory.toml"))
    assert message in text_of_error


def test_purchase_date_as_string_and_missing_file(tmp_path: Path) -> None:
    inventory = load(tmp_path, '[hosts.a]\npurchase_date = "2024-03-15"')
    assert inventory.entry("a").numbers["hardware_age_years"] == pytest.approx(1.0, abs=0.01)
    with pytest.raises(ConfigError, match="config file not found"):
        load_inventory_file(tmp_path / "missing.toml")


CSV = (
    "host_id,rack,aggregates,compliance,labels,labels.owner,maintenance,max_vms,"
    "purchase_date,power_idle_watts,rack_position_u\n"
    'node-1,r12,"ssd;gpu","pci-dss, soc2",tier=gold;site=fra1,ml,yes,40,2021-03-15,120,17\n'
    "node-2,,,,,,0,,,,\n"
)


def test_csv_form(tmp_path: Path) -> None:
    inventory = load(tmp_path, CSV, "cmdb.csv")
    node1 = inventory.entry("node-1")
    assert node1.rack == "r12" and node1.aggregates == ("ssd", "gpu")
    assert node1.compliance == ("pci-dss", "soc2")
    assert dict(node1.labels) == {"tier": "gold", "site": "fra1", "owner": "ml"}
    assert node1.maintenance is True
    assert node1.numbers["max_vms"] == 40 and node1.numbers["rack_position_u"] == 17
    assert node1.numbers["hardware_age_years"] == pytest.approx(4.0, abs=0.01)
    node2 = inventory.entry("node-2")
    assert node2.maintenance is False and node2.rack is None and dict(node2.numbers) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rack,host_id\nr1,a\n", ":1: rack: the first column must be host_id"),
        ("host_id,rack,rack\na,r1,r2\n", ":1: rack: column appears twice"),
        ("host_id,max_vms\na,many\n", ":2: max_vms: expected an integer, got 'many'"),
        ("host_id,max_vms\na,4\nb,0\n", ":3: max_vms: must be >= 1"),
        ("host_id,maintenance\na,perhaps\n", ":2: maintenance: expected true/false"),
        ("host_id,power_idle_watts\na,lots\n", ":2: power_idle_watts: expected a number"),
        ("host_id,owner\na,ops\n", ":2: owner: unknown column with the non-numeric value 'ops'"),
        ("host_id,labels\na,tier\n", ":2: labels: expected key=value pairs"),
        ("host_id,rack\na,r1\na,r2\n", ":3: host_id: host 'a' listed twice"),
        ("host_id,rack\na\n", ":2: expected 2 cells, got 1"),
        ("host_id,vm_count\na,3\n", ":2: vm_count: computed from the live fleet"),
        ("", "empty file"),
    ],
)
def test_csv_errors_name_the_file_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    text_of_error = error(tmp_path, text, "cmdb.csv")
    assert text_of_error.startswith(str(tmp_path / "cmdb.csv"))
    assert message in text_of_error
