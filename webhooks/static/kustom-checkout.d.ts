// Types of the kustom-app storefront SDK (kustom-checkout.js beside this file).
// The shapes are the service's answers of CONTRACT section 3 (docs/endpoints.md).

/** GET /carts/<cartId>/kustom/status, and every event of /kustom/events. */
export interface KustomCheckoutStatus {
  cartId: string;
  kustomOrderId: string | null;
  pendingHash: string | null;
  syncHash: string | null;
  /** pendingHash != syncHash: the iframe is suspended while this is true. */
  syncing: boolean;
  cartState: "open" | "completed" | string;
}

/** An error from the service (its `{"error": {code, message, details}}` body, flattened),
 * a network failure (status 0, code "network_error"), or giving up on the confirm call
 * (code "confirm_timeout"). */
export interface KustomCheckoutError {
  /** The HTTP status; 0 when the request did not reach the service. */
  status: number;
  /** e.g. "cart_not_found", "cart_not_payable", "kustom_unavailable", "amount_mismatch",
   * "network_error", "confirm_timeout", or "http_<status>" for a body without one. */
  code: string;
  message: string;
  details: Record<string, unknown>;
}

/** Why the confirm call is asked again: a 202 (`code` "checkout_incomplete"), a 408, 429
 * or 5xx answer, or a network error. */
export interface KustomCheckoutRetryReason {
  status: number;
  code: string;
  message?: string;
  details?: Record<string, unknown>;
}

export interface KustomCheckoutRetry {
  /** 1 for the first repeat. */
  attempt: number;
  delayMs: number;
  reason: KustomCheckoutRetryReason;
}

/** The confirm answer (200 checkout_complete) with the cart and Kustom order ids. */
export interface KustomCheckoutCompletion {
  status: "checkout_complete";
  cartState: "completed";
  orderNumber: string;
  cartId: string;
  kustomOrderId?: string | null;
}

/** What POST /carts/<cartId>/kustom answered (the checkout page, once mounted). */
export interface KustomCheckoutMounted {
  kustomOrderId: string;
  htmlSnippet: string;
  syncing: boolean;
}

export type KustomCheckoutPage = "checkout" | "confirmation";

export interface KustomCheckoutOptions {
  /** kustom-app's base URL; default: where this module was loaded from. */
  baseUrl?: string;
  cartId: string;
  /** Where the Kustom iframe goes (the checkout page): an element or a selector. */
  container?: Element | string;
  /** Absolute http(s) URLs of the shop, sent to Kustom as merchant_urls. */
  termsUrl: string;
  checkoutUrl: string;
  confirmationUrl: string;
  /** Force the page instead of detecting it from confirmationUrl. */
  page?: KustomCheckoutPage;
  onComplete?: (orderNumber: string, details: KustomCheckoutCompletion) => void;
  onError?: (error: KustomCheckoutError) => void;
  onStatus?: (status: KustomCheckoutStatus) => void;
  onRetry?: (retry: KustomCheckoutRetry) => void;
  /** Status polling interval where EventSource is missing or refused (default 2000). */
  pollIntervalMs?: number;
  /** The confirm call's backoff: first wait (500), longest wait (8000), give up (120000). */
  confirmInitialDelayMs?: number;
  confirmMaxDelayMs?: number;
  confirmTimeoutMs?: number;
}

export interface KustomCheckout {
  /** Checkout page: the mount answer, or the completion if the cart was already paid.
   * Confirmation page: the completion. null after onError. */
  readonly ready: Promise<KustomCheckoutMounted | KustomCheckoutCompletion | null>;
  readonly page: KustomCheckoutPage;
  /** The last status seen, or null before the first. */
  readonly status: KustomCheckoutStatus | null;
  /** Whether the Kustom iframe is suspended now. */
  readonly suspended: boolean;
  /** Stop following the cart and empty the container. */
  unmount(): void;
}

/** Mount the checkout (checkout page) or run the confirm call (confirmation page). */
export function mountKustomCheckout(options: KustomCheckoutOptions): KustomCheckout;

/** Whether `here` (default: the current location) is the page of `confirmationUrl`: same
 * origin and path, a `{placeholder}` in the path matching one segment. */
export function isConfirmationPage(confirmationUrl: string, here?: string | URL): boolean;

export interface KustomConfirmOptions {
  baseUrl?: string;
  cartId: string;
  onComplete?: (orderNumber: string, answer: Omit<KustomCheckoutCompletion, "cartId">) => void;
  onError?: (error: KustomCheckoutError) => void;
  onRetry?: (retry: KustomCheckoutRetry) => void;
  initialDelayMs?: number;
  maxDelayMs?: number;
  timeoutMs?: number;
}

/** The confirmation page's half of mountKustomCheckout on its own. */
export function confirmKustomCheckout(options: KustomConfirmOptions): { unmount(): void };
