// Dead letters: what ran out of retries, and redrive (all, or one destination's).
import { useState } from "preact/hooks";
import { html, useLoad, Problem, when } from "./ui.js";
import { query } from "./api.js";

export function DeadLetters({ api }) {
  const [dest, setDest] = useState("");
  const [note, setNote] = useState(null);
  const list = useLoad(() => api.get(api.deadLetters + query({ destination_id: dest, limit: 100 })), [api, dest]);
  const rows = list.data ? list.data.models : [];
  const redrive = async () => {
    try {
      const r = await api.post(`${api.deadLetters}/redrive`, dest ? { destination_id: dest } : {});
      setNote(`${r.redriven} redriven, ${r.skipped.length} skipped` +
        (r.skipped.length ? ` (${[...new Set(r.skipped.map((s) => s.reason))].join(", ")})` : ""));
      list.reload();
    } catch (err) {
      setNote(err.message);
    }
  };
  return html`<section>
    <header class="bar"><h2>Dead letters</h2>
      <button id="redrive" disabled=${!rows.length} onClick=${redrive}>Redrive ${dest ? "this destination's" : "all"}</button></header>
    <form class="filters" onSubmit=${(e) => e.preventDefault()}><label>Destination
      <input name="destination_id" value=${dest} onChange=${(e) => setDest(e.target.value.trim())} /></label></form>
    ${note ? html`<p class="note" role="status">${note}</p>` : null}
    <${Problem} error=${list.error} />
    <table class="list" aria-label="dead letters">
      <thead><tr><th>Time</th><th>Event</th><th>Destination</th><th>Attempts</th><th>Code</th><th>Message</th></tr></thead>
      <tbody>${rows.map((d) => html`<tr class="dead-letter" data-event=${d.event_id}>
        <td>${when(d.time)}</td><td><code>${d.event_id}</code></td>
        <td><a href=${`#/destinations/${d.destination_id}`}>${d.destination_id}</a></td>
        <td>${d.attempt_number}</td><td>${d.code}</td><td>${d.message}</td></tr>`)}</tbody>
    </table>
    ${list.data && !rows.length ? html`<p>No dead letters.</p>` : null}
  </section>`;
}
