"""The storefront SDK as a package: its types compile against a shop's TypeScript, refuse
wrong calls, declare every export of the module, and `npm pack` ships what they name.

The TypeScript compiler comes from `scripts/setup --browser` (npm, into .venv/node); the
SDK's behaviour itself is tested in the browser (test_sdk.py, test_purchase.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.browser.conftest import ROOT

pytestmark = pytest.mark.browser

PACKAGE = ROOT / "webhooks" / "static"
TSC = ROOT / ".venv" / "node" / "node_modules" / ".bin" / "tsc"

SHOP_CODE = """
import {
  mountKustomCheckout, isConfirmationPage, confirmKustomCheckout,
  type KustomCheckoutError, type KustomCheckoutStatus,
} from "@kustom-app/storefront";

const seen: KustomCheckoutStatus[] = [];
const checkout = mountKustomCheckout({
  baseUrl: "https://kustom-app.example.com",
  cartId: "cart-1001",
  container: "#kustom-checkout",
  termsUrl: "https://shop.example.com/terms",
  checkoutUrl: "https://shop.example.com/checkout",
  confirmationUrl: "https://shop.example.com/confirmation?cart=cart-1001",
  onStatus: (status) => { seen.push(status); const busy: boolean = status.syncing; void busy; },
  onError: (error: KustomCheckoutError) => console.error(error.code, error.status),
  onComplete: (orderNumber, details) => console.log(orderNumber.toUpperCase(), details.cartId),
  onRetry: ({ attempt, delayMs, reason }) => console.log(attempt + delayMs, reason.code),
});
checkout.ready.then((answer) => {
  if (answer && "htmlSnippet" in answer) { answer.kustomOrderId; }
});
const page: "checkout" | "confirmation" = checkout.page;
const suspended: boolean = checkout.suspended;
checkout.unmount();
const here: boolean = isConfirmationPage("https://shop.example.com/c/{checkout.order.id}");
confirmKustomCheckout({ cartId: "cart-1001", timeoutMs: 5000 }).unmount();
void page; void suspended; void here;
"""

# Each mistake a shop could make, with the compiler error that must catch it.
WRONG_CODE = {
    "missing cartId": (
        'mountKustomCheckout({ termsUrl: "t", checkoutUrl: "c", confirmationUrl: "u" });',
        "TS2345",
    ),
    "orderNumber is a string": (
        'mountKustomCheckout({ cartId: "c", termsUrl: "t", checkoutUrl: "c", '
        'confirmationUrl: "u", onComplete: (n: number) => n });',
        "TS2322",
    ),
    "status has no total": (
        'mountKustomCheckout({ cartId: "c", termsUrl: "t", checkoutUrl: "c", '
        'confirmationUrl: "u", onStatus: (s) => s.total });',
        "TS2339",
    ),
    "page is checkout or confirmation": (
        'mountKustomCheckout({ cartId: "c", termsUrl: "t", checkoutUrl: "c", '
        'confirmationUrl: "u", page: "cart" });',
        "TS2322",
    ),
}

TSCONFIG = {
    "compilerOptions": {
        "strict": True,
        "noEmit": True,
        "target": "ES2022",
        "module": "ESNext",
        "moduleResolution": "bundler",
        "lib": ["ES2022", "DOM"],
        "types": [],
    },
    "include": ["shop.ts"],
}


def compile_shop(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    """tsc over ``code`` in a project that has the SDK installed as a dependency."""
    if not TSC.exists():
        pytest.skip("TypeScript is not installed: run scripts/setup --browser")
    scope = tmp_path / "node_modules" / "@kustom-app"
    scope.mkdir(parents=True, exist_ok=True)
    link = scope / "storefront"
    if not link.exists():
        link.symlink_to(PACKAGE, target_is_directory=True)
    (tmp_path / "tsconfig.json").write_text(json.dumps(TSCONFIG))
    (tmp_path / "shop.ts").write_text(code)
    return subprocess.run(
        [str(TSC), "-p", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )


def test_a_shop_using_every_option_compiles_under_strict(tmp_path: Path) -> None:
    result = compile_shop(tmp_path, SHOP_CODE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("mistake", sorted(WRONG_CODE))
def test_the_types_refuse_a_wrong_call(tmp_path: Path, mistake: str) -> None:
    line, error_code = WRONG_CODE[mistake]
    code = 'import { mountKustomCheckout } from "@kustom-app/storefront";\n' + line + "\n"
    result = compile_shop(tmp_path, code)
    assert result.returncode != 0, mistake
    assert error_code in result.stdout, result.stdout


def test_the_types_declare_exactly_the_modules_exports() -> None:
    module = (PACKAGE / "kustom-checkout.js").read_text()
    types = (PACKAGE / "kustom-checkout.d.ts").read_text()
    exported = set(re.findall(r"^export function (\w+)", module, re.M))
    declared = set(re.findall(r"^export function (\w+)", types, re.M))
    assert exported == declared
    assert exported == {"mountKustomCheckout", "isConfirmationPage", "confirmKustomCheckout"}


def test_npm_pack_ships_the_module_its_types_and_readme(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    result = subprocess.run(
        [npm, "pack", "--dry-run", "--json"],
        cwd=PACKAGE,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "npm_config_cache": str(tmp_path / "npm-cache")},
    )
    assert result.returncode == 0, result.stderr
    [packed] = json.loads(result.stdout)
    files = {entry["path"] for entry in packed["files"]}
    assert files == {"package.json", "kustom-checkout.js", "kustom-checkout.d.ts", "README.md"}
    manifest = json.loads((PACKAGE / "package.json").read_text())
    assert manifest["exports"]["."]["types"] == "./kustom-checkout.d.ts"
    assert manifest["type"] == "module"
