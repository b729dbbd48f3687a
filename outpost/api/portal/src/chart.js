// A destination's attempts per hour over the last 24 hours (GET /metrics/attempts), drawn as
// stacked SVG bars: delivered below, failed above. No chart library: this is one picture.
import { html, useLoad, Problem } from "./ui.js";
import { query } from "./api.js";

const HOURS = 24;
const W = 720;
const H = 160;

export function Chart({ api, destinationId }) {
  const got = useLoad(() => {
    const end = new Date(Math.ceil(Date.now() / 3.6e6) * 3.6e6);
    const start = new Date(end.getTime() - HOURS * 3.6e6);
    const q = query({
      "time[start]": start.toISOString(),
      "time[end]": end.toISOString(),
      granularity: "1h",
      measures: "successful_count,failed_count",
      "filters[destination_id]": destinationId,
    });
    return api.get(`/metrics/attempts${q}`).then((r) => ({ start, points: r.data }));
  }, [api, destinationId]);
  if (!got.data) return html`<${Problem} error=${got.error} />`;
  const bars = Array.from({ length: HOURS }, () => ({ ok: 0, failed: 0 }));
  for (const p of got.data.points) {
    const i = Math.floor((new Date(p.time_bucket) - got.data.start) / 3.6e6);
    if (i >= 0 && i < HOURS) {
      bars[i].ok += p.metrics.successful_count || 0;
      bars[i].failed += p.metrics.failed_count || 0;
    }
  }
  const top = Math.max(1, ...bars.map((b) => b.ok + b.failed));
  const total = bars.reduce((a, b) => ({ ok: a.ok + b.ok, failed: a.failed + b.failed }), { ok: 0, failed: 0 });
  const bw = W / HOURS;
  const y = (n) => (n / top) * (H - 20);
  return html`<figure class="chart">
    <svg viewBox=${`0 0 ${W} ${H}`} role="img" aria-label="attempts per hour">
      ${bars.map((b, i) => html`<g>
        <rect class="ok" x=${i * bw + 2} width=${bw - 4} y=${H - y(b.ok)} height=${y(b.ok)}><title>${b.ok} delivered</title></rect>
        <rect class="failed" x=${i * bw + 2} width=${bw - 4} y=${H - y(b.ok) - y(b.failed)} height=${y(b.failed)}><title>${b.failed} failed</title></rect>
      </g>`)}
      ${[0, 6, 12, 18].map((h) => html`<text class="axis" x=${h * bw + 2} y="12">${new Date(got.data.start.getTime() + h * 3.6e6).getHours()}:00</text>`)}
    </svg>
    <figcaption id="chart-totals">${total.ok} delivered · ${total.failed} failed (peak ${top}/h)</figcaption>
  </figure>`;
}
