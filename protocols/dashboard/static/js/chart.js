// A small time-series chart in SVG: two lines over the last samples, scaled to the largest value.

const NS = 'http://www.w3.org/2000/svg';
const WIDTH = 600;
const HEIGHT = 160;

function line(points, span, top, start, cls) {
  const path = document.createElementNS(NS, 'polyline');
  path.setAttribute('class', cls);
  path.setAttribute('points', points.map(([t, v]) => `${(((t - start) / span) * WIDTH).toFixed(1)},${(HEIGHT - (v / top) * (HEIGHT - 8)).toFixed(1)}`).join(' '));
  return path;
}

export class RateChart {
  constructor(svg, scale, keep = 300) {
    this.svg = svg;
    this.scale = scale;
    this.keep = keep;
    this.points = [];
  }

  reset(series) {
    this.points = series.slice(-this.keep);
    this.draw();
  }

  add(point) {
    this.points.push(point);
    if (this.points.length > this.keep) this.points.shift();
    this.draw();
  }

  draw() {
    const pts = this.points;
    if (pts.length < 2) { this.svg.replaceChildren(); return; }
    const start = pts[0][0];
    const span = Math.max(pts[pts.length - 1][0] - start, 1);
    const top = Math.max(1, ...pts.map((p) => Math.max(p[1], p[2]))) * 1.1;
    const grid = document.createElementNS(NS, 'line');
    grid.setAttribute('class', 'grid');
    grid.setAttribute('x1', 0); grid.setAttribute('x2', WIDTH);
    grid.setAttribute('y1', HEIGHT / 2); grid.setAttribute('y2', HEIGHT / 2);
    this.svg.replaceChildren(
      grid,
      line(pts.map((p) => [p[0], p[2]]), span, top, start, 'del'),
      line(pts.map((p) => [p[0], p[1]]), span, top, start, 'pub'),
    );
    if (this.scale) this.scale.textContent = `(top ${Math.round(top).toLocaleString('en-US')}/s, last ${Math.round(span)} s)`;
  }
}
