// The tenant portal: opened by the link GET /tenants/{id}/portal hands out (?token=&tenant_id=
// &theme=), it keeps the token in sessionStorage and calls the tenant routes of /api/v1.
import { render } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { html, useLoad, Problem } from "./ui.js";
import { session, client, forget } from "./api.js";
import { Destinations, NewDestination, Destination } from "./destinations.js";
import { Events, AttemptLog } from "./activity.js";
import { DeadLetters } from "./deadletters.js";

function useHash() {
  const [hash, setHash] = useState(location.hash || "#/destinations");
  useEffect(() => {
    const on = () => setHash(location.hash || "#/destinations");
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return hash;
}

const TABS = [["#/destinations", "Destinations"], ["#/events", "Events"], ["#/attempts", "Attempts"], ["#/dead-letters", "Dead letters"]];

function Page({ api, types, hash }) {
  const [, section, id] = hash.slice(1).split("/");
  if (section === "destinations" && id === "new") return html`<${NewDestination} api=${api} types=${types} />`;
  if (section === "destinations" && id) return html`<${Destination} api=${api} types=${types} id=${decodeURIComponent(id)} />`;
  if (section === "events") return html`<${Events} api=${api} />`;
  if (section === "attempts") return html`<${AttemptLog} api=${api} />`;
  if (section === "dead-letters") return html`<${DeadLetters} api=${api} />`;
  return html`<${Destinations} api=${api} />`;
}

function App({ s }) {
  const api = useMemo(() => client(s), [s]);
  const hash = useHash();
  const types = useLoad(() => api.get("/destination-types"), [api]);
  const leave = () => { forget(); location.reload(); };
  if (types.error && types.error.status === 401) {
    return html`<main class="signin"><h1>Session expired</h1><p>Open a new portal link.</p></main>`;
  }
  return html`<div class="shell">
    <header class="top"><strong>Event destinations</strong><span class="tenant">${s.tenant}</span>
      <nav>${TABS.map(([href, label]) => html`<a href=${href} class=${hash.startsWith(href) ? "on" : ""}>${label}</a>`)}</nav>
      <button class="link" onClick=${leave}>Sign out</button></header>
    <main><${Problem} error=${types.error} />
      ${types.data ? html`<${Page} api=${api} types=${types.data} hash=${hash} />` : null}</main>
  </div>`;
}

const s = session();
if (s && s.theme === "dark") document.documentElement.classList.add("dark");
render(
  s ? html`<${App} s=${s} />` : html`<main class="signin"><h1>Tenant portal</h1><p>Open the portal through the link your provider gives you.</p></main>`,
  document.getElementById("portal")
);
