/**
 * Who may read the viewer: a Host check (DNS rebinding) and, when the viewer is reachable
 * beyond this machine, an access token. Both run as one middleware before every route, so a
 * refused request never reaches the datastore, and routes added later (cards, live updates)
 * are covered without knowing about it. Web standards only (crypto.subtle), like the app.
 */
import type { MiddlewareHandler } from "hono";
import { getCookie, setCookie } from "hono/cookie";

/** The cookie that keeps the token after the first visit (`?token=…`). */
export const TOKEN_COOKIE = "tsflow_view";

export interface AccessOptions {
  /** `Host` headers to answer (`127.0.0.1:8324`); others get 403. Unset: any Host. */
  allowedHosts?: string[];
  /** Required access token; unset: none (loopback). */
  token?: string;
}

const enc = new TextEncoder();

/**
 * Constant time whatever the inputs: both sides are hashed first, so neither a prefix match
 * nor the length of the secret shows in the comparison's timing.
 */
export async function sameSecret(given: string, secret: string): Promise<boolean> {
  const [a, b] = await Promise.all([crypto.subtle.digest("SHA-256", enc.encode(given)), crypto.subtle.digest("SHA-256", enc.encode(secret))]);
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i]! ^ y[i]!;
  return diff === 0;
}

export function accessControl({ allowedHosts, token }: AccessOptions): MiddlewareHandler {
  const hosts = allowedHosts;
  return async (c, next) => {
    if (hosts && !hosts.includes((c.req.header("host") ?? "").toLowerCase())) {
      return c.text("unexpected Host header: open the viewer at the address tsflow view printed (or add this name with --allow-host)", 403);
    }
    if (token === undefined) return next();
    const url = new URL(c.req.url);
    const fromQuery = url.searchParams.get("token");
    if (fromQuery !== null) {
      if (!(await sameSecret(fromQuery, token))) return unauthorized(c, "the access token in the address is wrong");
      // First visit: keep the token in a cookie scripts cannot read and other sites do not
      // send with their requests, then drop it from the address bar (and from history).
      setCookie(c, TOKEN_COOKIE, token, { httpOnly: true, sameSite: "Lax", path: "/" });
      url.searchParams.delete("token");
      return c.redirect(`${url.pathname}${url.search}`, 303);
    }
    const bearer = /^Bearer (.+)$/.exec(c.req.header("authorization") ?? "")?.[1];
    const given = bearer ?? getCookie(c, TOKEN_COOKIE);
    if (given === undefined) return unauthorized(c, "this viewer needs its access token: open the address tsflow view printed (it ends in ?token=…) or send Authorization: Bearer <token>");
    if (!(await sameSecret(given, token))) return unauthorized(c, "the access token is wrong: open the address tsflow view printed");
    return next();
  };
}

const unauthorized = (c: Parameters<MiddlewareHandler>[0], why: string) => c.text(why, 401, { "Cache-Control": "no-store", "WWW-Authenticate": 'Bearer realm="tsflow viewer"' });
