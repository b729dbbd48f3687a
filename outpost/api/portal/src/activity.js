// The event and attempt logs with filters, retrying one event to one destination.
import { useState } from "preact/hooks";
import { html, useLoad, Problem, when, Status } from "./ui.js";
import { query } from "./api.js";

function Filters({ fields, value, set }) {
  return html`<form class="filters" onSubmit=${(e) => e.preventDefault()}>
    ${fields.map(([key, label, options]) => html`<label>${label}
      ${options
        ? html`<select name=${key} value=${value[key] || ""} onChange=${(e) => set({ ...value, [key]: e.target.value })}>
            <option value="">any</option>${options.map((o) => html`<option value=${o}>${o}</option>`)}</select>`
        : html`<input name=${key} type=${key.startsWith("time") ? "datetime-local" : "text"} value=${value[key] || ""}
            onChange=${(e) => set({ ...value, [key]: e.target.value })} />`}
    </label>`)}
  </form>`;
}

const since = (v) => (v ? new Date(v).toISOString() : "");

function Pager({ page, at, go }) {
  const p = page && page.pagination;
  return html`<div class="pager">
    <button disabled=${!p || !p.prev} onClick=${() => go({ prev: p.prev })}>Newer</button>
    <button disabled=${!p || !p.next} onClick=${() => go({ next: p.next })}>Older</button>
    ${at.next || at.prev ? html`<button onClick=${() => go({})}>Latest</button>` : null}
  </div>`;
}

export function Attempts({ api, destinationId, eventId }) {
  const [f, setF] = useState({});
  const [at, setAt] = useState({});
  const [note, setNote] = useState(null);
  const list = useLoad(() => {
    const q = { ...f, destination_id: destinationId || f.destination_id, event_id: eventId || f.event_id, "time[gte]": since(f["time[gte]"]), ...at, limit: 25 };
    return api.get(`/attempts${query(q)}`);
  }, [api, destinationId, eventId, JSON.stringify(f), JSON.stringify(at)]);
  const retry = async (a) => {
    try {
      await api.post("/retry", { event_id: a.event_id, destination_id: a.destination_id });
      setNote({ ok: true, text: `Retry of ${a.event_id} queued` });
      setTimeout(list.reload, 1000);
    } catch (err) {
      setNote({ ok: false, text: err.message });
    }
  };
  const fields = [["status", "Status", ["success", "failed"]], ["topic", "Topic"], ["time[gte]", "Since"]];
  if (!destinationId) fields.push(["destination_id", "Destination"]);
  if (!eventId) fields.push(["event_id", "Event"]);
  const rows = list.data ? list.data.models : [];
  return html`<div class="attempts">
    <${Filters} fields=${fields} value=${f} set=${(v) => { setAt({}); setF(v); }} />
    <button class="refresh" onClick=${list.reload}>Refresh</button>
    ${note ? html`<p class=${note.ok ? "note" : "error"} role="status">${note.text}</p>` : null}
    <${Problem} error=${list.error} />
    <table class="list" aria-label="attempts">
      <thead><tr><th>Time</th><th>Event</th><th>Destination</th><th>#</th><th>Status</th><th>Code</th><th></th></tr></thead>
      <tbody>${rows.map((a) => html`<tr class="attempt" data-event=${a.event_id}>
        <td>${when(a.time)}</td><td><code>${a.event_id}</code></td>
        <td><a href=${`#/destinations/${a.destination_id}`}>${a.destination_id}</a></td>
        <td>${a.attempt_number}${a.manual ? " (manual)" : ""}</td>
        <td><${Status} value=${a.status} /></td><td>${a.code}</td>
        <td><button class="retry" onClick=${() => retry(a)}>Retry</button></td></tr>`)}</tbody>
    </table>
    ${list.data && !rows.length ? html`<p>No attempts match.</p>` : null}
    <${Pager} page=${list.data} at=${at} go=${setAt} />
  </div>`;
}

export function Events({ api }) {
  const [f, setF] = useState({});
  const [at, setAt] = useState({});
  const [open, setOpen] = useState(null);
  const list = useLoad(
    () => api.get(`/events${query({ ...f, "time[gte]": since(f["time[gte]"]), ...at, limit: 25 })}`),
    [api, JSON.stringify(f), JSON.stringify(at)]
  );
  const rows = list.data ? list.data.models : [];
  return html`<section>
    <header class="bar"><h2>Events</h2><button onClick=${list.reload}>Refresh</button></header>
    <${Filters} fields=${[["topic", "Topic"], ["destination_id", "Destination"], ["time[gte]", "Since"]]}
      value=${f} set=${(v) => { setAt({}); setF(v); }} />
    <${Problem} error=${list.error} />
    <table class="list" aria-label="events">
      <thead><tr><th>Time</th><th>Event</th><th>Topic</th><th>Destinations</th></tr></thead>
      <tbody>${rows.map((e) => html`<tr class="event" data-event=${e.id}>
        <td>${when(e.time)}</td>
        <td><button class="link" onClick=${() => setOpen(open === e.id ? null : e.id)}><code>${e.id}</code></button></td>
        <td>${e.topic}</td><td>${(e.matched_destination_ids || []).length}</td></tr>`)}</tbody>
    </table>
    ${list.data && !rows.length ? html`<p>No events match.</p>` : null}
    <${Pager} page=${list.data} at=${at} go=${setAt} />
    ${open ? html`<h3>Attempts of ${open}</h3><${Attempts} api=${api} eventId=${open} />` : null}
  </section>`;
}

export function AttemptLog({ api }) {
  return html`<section><h2>Attempts</h2><${Attempts} api=${api} /></section>`;
}
