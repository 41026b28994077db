// Live loss chart on the Follow-Your-Motion training nodes.
// The server (nodes/feedback.py, LossFeed) sends "fym.training.loss" at each log point of a run:
// {node, stage, step, steps, losses: the per-step losses since the last event, steps_per_second, seconds_left}.
// Previews come through ComfyUI's own progress-bar previews and need nothing here.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

const TRAINING_NODES = ["FYM_SpatialLoRATrain", "FYM_TemporalLoRATrain"];
const LOSS_EVENT = "fym.training.loss";
const SMOOTHING = 0.9; // weight of the past in the smoothed loss (an exponential average, bias-corrected)
const HEIGHT = 150; // CSS pixels

function duration(seconds) {
  if (seconds == null || !isFinite(seconds)) return "";
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m` : `${Math.floor(s / 60)}m ${s % 60}s`;
}

class LossChart {
  constructor() {
    this.canvas = document.createElement("canvas");
    this.canvas.className = "fym-loss-chart";
    this.canvas.style.width = "100%";
    this.canvas.style.height = `${HEIGHT}px`;
    this.reset();
  }

  reset() {
    this.losses = [];
    this.smoothed = [];
    this.last = null;
    this.draw();
  }

  add(event) {
    const first = event.step - event.losses.length; // steps before this event's losses
    if (first === 0 || first < this.losses.length) this.reset(); // a new run, or a resumed one with its history
    for (const loss of event.losses) {
      const previous = this.smoothed.length ? this.smoothed[this.smoothed.length - 1].raw : 0;
      const raw = SMOOTHING * previous + (1 - SMOOTHING) * loss;
      this.losses.push(loss);
      this.smoothed.push({ raw, value: raw / (1 - SMOOTHING ** (this.losses.length)) });
    }
    this.last = event;
    this.draw();
  }

  status() {
    const e = this.last;
    if (!e) return "loss: waiting for the first log point (log_every)";
    const parts = [`${e.stage} step ${e.step}/${e.steps}`, `loss ${this.smoothed.at(-1).value.toPrecision(4)}`];
    if (e.steps_per_second) parts.push(`${e.steps_per_second.toFixed(2)} steps/s`);
    if (e.seconds_left != null) parts.push(`${duration(e.seconds_left)} left`);
    return parts.join("  ·  ");
  }

  draw() {
    const canvas = this.canvas;
    const scale = window.devicePixelRatio || 1;
    const width = Math.max(200, canvas.clientWidth || 300);
    canvas.width = width * scale;
    canvas.height = HEIGHT * scale;
    canvas.dataset.points = String(this.losses.length); // read by tests/integration/test_browser.py
    canvas.dataset.step = String(this.last ? this.last.step : 0);
    const g = canvas.getContext("2d");
    g.setTransform(scale, 0, 0, scale, 0, 0);
    g.fillStyle = "#1b1b1b";
    g.fillRect(0, 0, width, HEIGHT);
    g.font = "11px sans-serif";
    g.fillStyle = "#ddd";
    g.fillText(this.status(), 6, 14);
    const n = this.losses.length;
    if (n < 2) return;
    const top = 22, bottom = HEIGHT - 14, left = 6, right = width - 6;
    const low = Math.min(...this.losses), high = Math.max(...this.losses);
    const span = high - low || 1;
    const x = (i) => left + ((right - left) * i) / (n - 1);
    const y = (v) => bottom - ((bottom - top) * (v - low)) / span;
    const line = (values, colour, widthPx) => {
      g.strokeStyle = colour;
      g.lineWidth = widthPx;
      g.beginPath();
      values.forEach((v, i) => (i ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v))));
      g.stroke();
    };
    line(this.losses, "rgba(120, 170, 255, 0.35)", 1);
    line(this.smoothed.map((s) => s.value), "#6af", 2);
    g.fillStyle = "#999";
    g.fillText(`${high.toPrecision(3)}`, left, top + 9);
    g.fillText(`${low.toPrecision(3)}`, left, bottom + 11);
  }
}

app.registerExtension({
  name: "FollowYourMotion.TrainingChart",

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!TRAINING_NODES.includes(nodeData.name)) return;
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = created?.apply(this, arguments);
      this.fymChart = new LossChart();
      const widget = this.addDOMWidget("loss_chart", "fym_loss_chart", this.fymChart.canvas, {
        serialize: false, // not a value: saved workflows and queued prompts stay as before
        hideOnZoom: false,
        getMinHeight: () => HEIGHT + 10,
        getMaxHeight: () => HEIGHT + 10,
      });
      widget.serialize = false;
      return result;
    };
  },

  async setup() {
    api.addEventListener(LOSS_EVENT, ({ detail }) => {
      const node = app.graph?.getNodeById(Number(detail.node)) ?? app.graph?.getNodeById(detail.node);
      if (!node?.fymChart) return;
      node.fymChart.add(detail);
      node.setDirtyCanvas?.(true, false);
    });
  },
});
