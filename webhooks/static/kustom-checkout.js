// kustom-app storefront SDK (CONTRACT section 3). A framework-free ES module:
//
//   import { mountKustomCheckout } from "https://<kustom-app>/static/kustom-checkout.js";
//
// One call, with the same options, on the checkout page and on the confirmation page:
//   const checkout = mountKustomCheckout({
//     baseUrl,                                 // kustom-app; default: where this module is
//     cartId, container: "#kustom",            // an element or a selector (checkout page)
//     termsUrl, checkoutUrl, confirmationUrl,  // absolute http(s) URLs of the shop
//     onComplete(orderNumber, details) {},     // the cart is completed; details is the
//                                              //   confirm answer + {cartId, kustomOrderId}
//     onError(error) {},                       // {status, code, message, details}
//     onStatus(status) {},                     // every status: {cartId, kustomOrderId,
//                                              //   pendingHash, syncHash, syncing, cartState}
//     onRetry({attempt, delayMs, reason}) {},  // the confirm call is asked again
//   });
//   // -> {ready, page, status, suspended, unmount()}
//
// Which page is this? The confirmation page is the one whose origin and path are those of
// confirmationUrl: its query and fragment are ignored (Kustom fills the
// {checkout.order.id} placeholder there) and a {placeholder} in its path matches any one
// path segment. `page: "checkout" | "confirmation"` says it outright instead.
//
// Checkout page: POST /carts/<id>/kustom, inject the snippet (re-running its scripts),
// follow the events (EventSource, else polling /status), suspend the iframe while syncing
// and resume it after. If the cart is completed meanwhile (another tab, the push), the
// confirm call fetches the order number and onComplete gets it.
// Confirmation page: POST /carts/<id>/kustom/confirm, asked again with exponential backoff
// on 202, 408, 429, 5xx and network errors, until checkout_complete: onComplete(orderNumber,
// details). 409 amount_mismatch and other 4xx go to onError at once; so does giving up
// after confirmTimeoutMs (code confirm_timeout).
//
// The shop's origin must be listed in kustom-app's CORS_ALLOWED_ORIGINS.
//
// Types: kustom-checkout.d.ts beside this file (this directory is the npm package
// @kustom-app/storefront; see docs/storefront.md).

const MODULE_BASE = new URL("..", import.meta.url).href;

function noop() {}

function baseOf(baseUrl) {
  return String(baseUrl || MODULE_BASE).replace(/\/+$/, "");
}

function cartPath(base, cartId) {
  if (!cartId) throw new TypeError("kustom-checkout: cartId is required");
  return `${base}/carts/${encodeURIComponent(cartId)}/kustom`;
}

function resolveContainer(container) {
  const element = typeof container === "string" ? document.querySelector(container) : container;
  if (!element || typeof element.appendChild !== "function") {
    throw new TypeError("kustom-checkout: container must be an element or a selector of one");
  }
  return element;
}

// The service's error body {"error": {code, message, details}} as one flat object.
function apiError(status, body, fallbackCode) {
  const error = (body && body.error) || {};
  return {
    status,
    code: error.code || fallbackCode || "http_" + status,
    message: error.message || `kustom-app answered HTTP ${status}`,
    details: error.details || {},
  };
}

function networkError(cause) {
  return { status: 0, code: "network_error", message: String((cause && cause.message) || cause), details: {} };
}

async function request(method, url, body) {
  const init = { method, mode: "cors", credentials: "omit", cache: "no-store", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  let parsed = null;
  try {
    parsed = await response.json();
  } catch (_) {
    parsed = null; // an empty or non-JSON body (a proxy's error page)
  }
  return { status: response.status, ok: response.ok, body: parsed };
}

// innerHTML never runs <script>s: replace each with a fresh element so the snippet's
// scripts (which define window._klarnaCheckout) execute, in document order.
function injectSnippet(container, html) {
  container.innerHTML = html;
  for (const old of Array.from(container.querySelectorAll("script"))) {
    const script = document.createElement("script");
    for (const attribute of Array.from(old.attributes)) {
      script.setAttribute(attribute.name, attribute.value);
    }
    script.async = false;
    script.text = old.text;
    old.replaceWith(script);
  }
}

function kustomApi(method) {
  const checkout = window._klarnaCheckout;
  if (typeof checkout === "function") {
    checkout((api) => api[method]());
  }
}

// Kustom fills placeholders such as {checkout.order.id} into the confirmation URL; the URL
// parser keeps them percent-encoded in a path ("%7Bcheckout.order.id%7D").
const PLACEHOLDER = /(?:\{|%7B)[^/]*?(?:\}|%7D)/gi;

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// The rule in the header: same origin, same path (a {placeholder} matching one segment).
export function isConfirmationPage(confirmationUrl, here) {
  if (!confirmationUrl) return false;
  let target;
  let current;
  try {
    target = new URL(confirmationUrl);
    current = new URL(String(here || window.location.href));
  } catch (_) {
    return false;
  }
  if (target.origin !== current.origin) return false;
  const pattern = target.pathname
    .split(PLACEHOLDER)
    .map(escapeRegExp)
    .join("[^/]+");
  return new RegExp(`^${pattern}$`).test(current.pathname);
}

// POST .../confirm until checkout_complete. Exponential backoff with jitter: each wait is
// between half and all of min(maxDelayMs, initialDelayMs * 2^attempt), so 0.5 s, 1 s, 2 s,
// ... up to 8 s by default; after timeoutMs (120 s) it gives up with confirm_timeout: the
// push still completes the cart, and the shop tells the shopper by e-mail.
function runConfirm(path, timing, handlers) {
  const initialDelayMs = timing.initialDelayMs || 500;
  const maxDelayMs = timing.maxDelayMs || 8000;
  const timeoutMs = timing.timeoutMs || 120000;
  const started = Date.now();
  let active = true;
  let attempt = 0;
  let timer = null;

  function finish(callback, value, details) {
    active = false;
    callback(value, details);
  }

  function retry(reason) {
    const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** attempt);
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    attempt += 1;
    if (Date.now() + delay - started > timeoutMs) {
      finish(handlers.onError, {
        status: reason.status,
        code: "confirm_timeout",
        message: "The payment is not confirmed yet. Your order will be confirmed by e-mail.",
        details: { last: reason },
      });
      return;
    }
    handlers.onRetry({ attempt, delayMs: Math.round(delay), reason });
    timer = setTimeout(confirmOnce, delay);
  }

  async function confirmOnce() {
    if (!active) return;
    let answer;
    try {
      answer = await request("POST", `${path}/confirm`);
    } catch (e) {
      if (active) retry(networkError(e));
      return;
    }
    if (!active) return;
    const body = answer.body || {};
    if (answer.status === 200 && body.status === "checkout_complete") {
      finish(handlers.onComplete, body.orderNumber, body);
    } else if (answer.status === 202 || answer.status === 200) {
      retry({ status: answer.status, code: body.status || "checkout_incomplete" });
    } else if (answer.status >= 500 || answer.status === 408 || answer.status === 429) {
      retry(apiError(answer.status, answer.body));
    } else {
      finish(handlers.onError, apiError(answer.status, answer.body)); // 409, 404: final
    }
  }

  confirmOnce();
  return function cancel() {
    active = false;
    clearTimeout(timer);
  };
}

export function mountKustomCheckout(options) {
  const o = options || {};
  const base = baseOf(o.baseUrl);
  const cartId = o.cartId;
  const path = cartPath(base, cartId);
  const page =
    o.page === "checkout" || o.page === "confirmation"
      ? o.page
      : isConfirmationPage(o.confirmationUrl)
        ? "confirmation"
        : "checkout";
  const container = page === "checkout" ? resolveContainer(o.container) : null;
  const onStatus = o.onStatus || noop;
  const onError = o.onError || noop;
  const onComplete = o.onComplete || noop;
  const onRetry = o.onRetry || noop;
  const pollMs = o.pollIntervalMs || 2000;
  const timing = {
    initialDelayMs: o.confirmInitialDelayMs,
    maxDelayMs: o.confirmMaxDelayMs,
    timeoutMs: o.confirmTimeoutMs,
  };

  let mounted = true;
  let suspended = false;
  let source = null;
  let pollTimer = null;
  let lastStatus = null;
  let cancelConfirm = null;
  let completing = false; // the confirm call runs, or has run

  function setSuspended(wanted) {
    if (!mounted || wanted === suspended) return;
    suspended = wanted;
    kustomApi(wanted ? "suspend" : "resume");
  }

  function stopUpdates() {
    if (source) {
      source.close();
      source = null;
    }
    clearTimeout(pollTimer);
    pollTimer = null;
  }

  function fail(error) {
    if (mounted) onError(error);
  }

  // Resolves to the confirm answer once completed, or null after onError.
  function confirm() {
    completing = true;
    return new Promise((resolve) => {
      cancelConfirm = runConfirm(path, timing, {
        onRetry(retry) {
          if (mounted) onRetry(retry);
        },
        onComplete(orderNumber, body) {
          cancelConfirm = null;
          if (!mounted) return resolve(null);
          const kustomOrderId = lastStatus ? lastStatus.kustomOrderId : undefined;
          const details = { ...body, cartId, kustomOrderId };
          onComplete(orderNumber, details);
          resolve(details);
        },
        onError(error) {
          cancelConfirm = null;
          fail(error);
          resolve(null);
        },
      });
    });
  }

  function handleStatus(status) {
    if (!mounted || !status || typeof status !== "object") return;
    const previous = lastStatus;
    lastStatus = status;
    onStatus(status);
    if (status.cartState === "completed") {
      // Paid meanwhile (another tab, or the push beat the redirect): nothing left to sync;
      // the confirm call answers at once with the order number.
      stopUpdates();
      if (!completing) confirm();
      return;
    }
    if (status.syncing || suspended) {
      setSuspended(Boolean(status.syncing)); // resume() makes the iframe re-read the order
    } else if (previous && previous.syncHash !== status.syncHash) {
      // A whole sync happened between two statuses seen here (a burst the stream merged
      // into its final state, or one between two polls): refresh the iframe as a resume
      // after it would have.
      kustomApi("suspend");
      kustomApi("resume");
    }
  }

  // Where EventSource is missing or the stream is refused (a proxy that buffers, a 503),
  // ask for the status instead until unmounted.
  function poll() {
    pollTimer = setTimeout(async () => {
      if (!mounted) return;
      let answer;
      try {
        answer = await request("GET", `${path}/status`);
      } catch (e) {
        if (mounted && pollTimer !== null) poll();
        return;
      }
      if (!mounted || pollTimer === null) return; // unmounted, or stopped meanwhile
      if (answer.ok) {
        handleStatus(answer.body);
      } else if (answer.status >= 400 && answer.status < 500) {
        stopUpdates();
        fail(apiError(answer.status, answer.body));
        return;
      }
      if (!mounted || pollTimer === null) return; // stopped by handleStatus
      poll();
    }, pollMs);
  }

  function subscribe() {
    if (typeof EventSource !== "function") {
      poll();
      return;
    }
    source = new EventSource(`${path}/events`);
    source.onmessage = (event) => {
      let status;
      try {
        status = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      handleStatus(status);
    };
    source.onerror = () => {
      // CONNECTING: the browser reconnects by itself and gets the current state first.
      // CLOSED: the server refused the stream (not a 200); fall back to polling.
      if (source && source.readyState === EventSource.CLOSED) {
        source = null;
        poll();
      }
    };
  }

  async function mountCheckout() {
    let answer;
    try {
      answer = await request("POST", path, {
        termsUrl: o.termsUrl,
        checkoutUrl: o.checkoutUrl,
        confirmationUrl: o.confirmationUrl,
      });
    } catch (e) {
      fail(networkError(e));
      return null;
    }
    if (!mounted) return null;
    if (answer.status === 409 && answer.body && answer.body.error &&
        answer.body.error.code === "cart_completed") {
      return confirm(); // back on the checkout page after paying: the order, not an error
    }
    if (!answer.ok) {
      fail(apiError(answer.status, answer.body));
      return null;
    }
    injectSnippet(container, answer.body.htmlSnippet || "");
    setSuspended(Boolean(answer.body.syncing));
    subscribe();
    return answer.body;
  }

  // Checkout page: {kustomOrderId, htmlSnippet, syncing} once mounted. Confirmation page
  // (or a cart completed before mounting): the confirm answer + {cartId, kustomOrderId}
  // once completed. null after an error.
  const ready = page === "confirmation" ? confirm() : mountCheckout();

  return {
    ready,
    page,
    get status() {
      return lastStatus;
    },
    get suspended() {
      return suspended;
    },
    unmount() {
      if (!mounted) return;
      mounted = false;
      stopUpdates();
      if (cancelConfirm) cancelConfirm();
      if (container) container.innerHTML = "";
    },
  };
}

// The confirmation page's half of mountKustomCheckout on its own (no page detection):
// kept for shops that called it before mountKustomCheckout did both.
export function confirmKustomCheckout(options) {
  const o = options || {};
  const cancel = runConfirm(cartPath(baseOf(o.baseUrl), o.cartId), o, {
    onComplete: o.onComplete || noop,
    onError: o.onError || noop,
    onRetry: o.onRetry || noop,
  });
  return { unmount: cancel };
}
