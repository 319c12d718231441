// kustom-app storefront SDK (CONTRACT section 3). A framework-free ES module:
//
//   import { mountKustomCheckout, confirmKustomCheckout }
//     from "https://<kustom-app>/static/kustom-checkout.js";
//
// Checkout page:
//   const checkout = mountKustomCheckout({
//     cartId, container: "#kustom",            // an element or a selector
//     termsUrl, checkoutUrl, confirmationUrl,  // absolute http(s) URLs of the shop
//     onStatus(status) {},                     // every status: {cartId, kustomOrderId,
//                                              //   pendingHash, syncHash, syncing, cartState}
//     onError(error) {},                       // {status, code, message, details}
//     onComplete({cartId, kustomOrderId}) {},  // the cart was completed meanwhile
//   });
//   checkout.unmount();
//
// Confirmation page (Kustom sends the shopper to confirmationUrl):
//   confirmKustomCheckout({ cartId, onComplete(orderNumber) {}, onError(error) {} });
//
// `baseUrl` (where kustom-app runs) defaults to the origin this module was loaded from.
// The shop's origin must be listed in kustom-app's CORS_ALLOWED_ORIGINS.

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

export function mountKustomCheckout(options) {
  const o = options || {};
  const base = baseOf(o.baseUrl);
  const cartId = o.cartId;
  const path = cartPath(base, cartId);
  const container = resolveContainer(o.container);
  const onStatus = o.onStatus || noop;
  const onError = o.onError || noop;
  const onComplete = o.onComplete || noop;
  const pollMs = o.pollIntervalMs || 2000;

  let mounted = true;
  let suspended = false;
  let source = null;
  let pollTimer = null;
  let lastStatus = null;

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

  function handleStatus(status) {
    if (!mounted || !status || typeof status !== "object") return;
    lastStatus = status;
    onStatus(status);
    if (status.cartState === "completed") {
      // Paid meanwhile (another tab, or the push beat the redirect): nothing left to sync.
      stopUpdates();
      onComplete({ cartId, kustomOrderId: status.kustomOrderId });
      return;
    }
    setSuspended(Boolean(status.syncing));
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
        if (mounted) poll();
        return;
      }
      if (!mounted) return;
      if (answer.ok) {
        handleStatus(answer.body);
      } else if (answer.status >= 400 && answer.status < 500) {
        stopUpdates();
        fail(apiError(answer.status, answer.body));
        return;
      }
      if (!mounted || pollTimer === null) return; // unmounted, or stopped by handleStatus
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

  const ready = (async () => {
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
    if (!answer.ok) {
      fail(apiError(answer.status, answer.body));
      return null;
    }
    injectSnippet(container, answer.body.htmlSnippet || "");
    setSuspended(Boolean(answer.body.syncing));
    subscribe();
    return answer.body;
  })();

  return {
    ready, // resolves to {kustomOrderId, htmlSnippet, syncing}, or null after an error
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
      container.innerHTML = "";
    },
  };
}

export function confirmKustomCheckout(options) {
  const o = options || {};
  const path = cartPath(baseOf(o.baseUrl), o.cartId);
  const onComplete = o.onComplete || noop;
  const onError = o.onError || noop;
  const onRetry = o.onRetry || noop;
  const initialDelayMs = o.initialDelayMs || 500;
  const maxDelayMs = o.maxDelayMs || 8000;
  const timeoutMs = o.timeoutMs || 120000; // then tell the shopper; the push still completes
  const started = Date.now();

  let active = true;
  let attempt = 0;
  let timer = null;

  function retry(reason) {
    // Exponential backoff with jitter: 0.5 s, 1 s, 2 s, ... up to 8 s.
    const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** attempt);
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    attempt += 1;
    if (Date.now() + delay - started > timeoutMs) {
      active = false;
      onError({
        status: reason.status,
        code: "confirm_timeout",
        message: "The payment is not confirmed yet. Your order will be confirmed by e-mail.",
        details: { last: reason },
      });
      return;
    }
    onRetry({ attempt, delayMs: Math.round(delay), reason });
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
      active = false;
      onComplete(body.orderNumber, body);
    } else if (answer.status === 202 || answer.status === 200) {
      retry({ status: answer.status, code: body.status || "checkout_incomplete" });
    } else if (answer.status >= 500 || answer.status === 408 || answer.status === 429) {
      retry(apiError(answer.status, answer.body));
    } else {
      active = false; // 409 amount_mismatch, 404: asking again cannot help
      onError(apiError(answer.status, answer.body));
    }
  }

  confirmOnce();
  return {
    unmount() {
      active = false;
      clearTimeout(timer);
    },
  };
}
