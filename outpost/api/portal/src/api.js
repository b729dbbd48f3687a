// The portal's one way to the API: the tenant's token (from the link) on every call to the
// existing tenant routes under /api/v1. An error answer becomes an Error with its message.
const KEY = "outpost-portal";
export const BASE = "/api/v1";

export function session() {
  const q = new URLSearchParams(location.search);
  if (q.get("token")) {
    const s = { token: q.get("token"), tenant: q.get("tenant_id"), theme: q.get("theme") };
    sessionStorage.setItem(KEY, JSON.stringify(s));
    history.replaceState(null, "", location.pathname + location.hash); // the token leaves the URL
    return s;
  }
  const saved = sessionStorage.getItem(KEY);
  return saved ? JSON.parse(saved) : null;
}

export function forget() {
  sessionStorage.removeItem(KEY);
}

export function client(s) {
  async function call(method, path, body) {
    const r = await fetch(BASE + path, {
      method,
      headers: {
        Authorization: `Bearer ${s.token}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    const data = text ? JSON.parse(text) : null;
    if (!r.ok) {
      const detail = data && Array.isArray(data.data) ? `: ${data.data.join("; ")}` : "";
      const err = new Error(`${(data && data.message) || r.statusText}${detail}`);
      err.status = r.status;
      throw err;
    }
    return data;
  }
  const t = `/tenants/${encodeURIComponent(s.tenant)}`;
  return {
    tenant: s.tenant,
    get: (path) => call("GET", path),
    post: (path, body) => call("POST", path, body),
    patch: (path, body) => call("PATCH", path, body),
    put: (path) => call("PUT", path),
    del: (path) => call("DELETE", path),
    dest: (id = "") => `${t}/destinations${id ? "/" + encodeURIComponent(id) : ""}`,
    deadLetters: `${t}/dead-letters`,
  };
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    for (const one of [].concat(v)) if (one !== "" && one != null) q.append(k, one);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}
