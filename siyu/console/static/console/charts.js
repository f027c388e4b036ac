/* Draw the dashboard charts with the locally served plotly.js from the JSON the server embedded. */
(function () {
  var node = document.getElementById("chart-data");
  if (!node || !window.Plotly) { return; }
  var data = JSON.parse(node.textContent || "{}");
  var palette = ["#2f6bff", "#12b886", "#f59f00", "#e64980", "#7950f2", "#15aabf", "#fa5252",
                 "#82c91e", "#fd7e14", "#4c6ef5", "#20c997", "#be4bdb", "#868e96"];
  var layout = function (extra) {
    return Object.assign({
      margin: { t: 10, r: 10, b: 40, l: 50 },
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "-apple-system, 'PingFang SC', 'Microsoft YaHei', 'WenQuanYi Micro Hei', sans-serif", size: 12, color: "#3b4256" },
      xaxis: { gridcolor: "#eef0f5" }, yaxis: { gridcolor: "#eef0f5", rangemode: "tozero" },
      legend: { orientation: "h", y: -0.2 }
    }, extra || {});
  };
  var config = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
  function integerAxis(values) {
    // Counts are whole numbers: never label the axis 0.5, 1.5 ...
    var top = Math.max.apply(null, values.concat([0]));
    return top <= 8 ? { gridcolor: "#eef0f5", rangemode: "tozero", dtick: 1 } : { gridcolor: "#eef0f5", rangemode: "tozero", tickformat: ",d" };
  }
  function empty(el) {
    el.classList.add("chart-empty");
    el.textContent = el.getAttribute("data-empty") || "—";
  }
  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var spec = data[el.getAttribute("data-chart")];
    if (!spec || !spec.x || spec.x.length === 0) { empty(el); return; }
    if (spec.series) {
      var traces = spec.series.map(function (s, i) {
        return { type: "bar", name: s.name, x: spec.x, y: s.y, marker: { color: palette[i % palette.length] } };
      });
      var totals = spec.x.map(function (_, k) {
        return spec.series.reduce(function (sum, s) { return sum + (s.y[k] || 0); }, 0);
      });
      Plotly.newPlot(el, traces, layout({ barmode: "stack", xaxis: { type: "category", gridcolor: "#eef0f5" },
        yaxis: integerAxis(totals) }), config);
    } else {
      Plotly.newPlot(el, [{ type: "scatter", mode: "lines", name: spec.name || "", x: spec.x, y: spec.y,
        line: { color: spec.color || "#2f6bff", width: 2 }, fill: "tozeroy", fillcolor: "rgba(47,107,255,0.08)" }],
        layout({ showlegend: false, yaxis: integerAxis(spec.y) }), config);
    }
  });
})();
