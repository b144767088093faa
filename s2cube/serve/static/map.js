// s2cube web map: one XYZ layer per served layer, a layer switcher, provenance on click.
// Everything is fetched relative to this page, so it works behind any base path.
(function () {
  "use strict";
  var status = document.getElementById("status");
  var map = L.map("map", { worldCopyJump: true });
  window.s2cubeMap = map;
  fetch("api/info").then(function (r) { return r.json(); }).then(function (info) {
    var maxNative = info.tile_matrix_sets.WebMercatorQuad.maxzoom;
    var base = {};
    var first = null;
    Object.keys(info.layers).forEach(function (id) {
      var layer = L.tileLayer("tiles/" + id + "/{z}/{x}/{y}.png", {
        maxNativeZoom: maxNative, maxZoom: maxNative + 3, minZoom: 0,
        attribution: info.attribution + " · s2cube",
      });
      layer.on("load", function () {
        status.textContent = "tiles loaded · " + info.date_range[0] + " – " + info.date_range[1];
        document.body.setAttribute("data-tiles-loaded", "1");
      });
      base[info.layers[id].title] = layer;
      if (!first) { first = layer; }
    });
    first.addTo(map);
    L.control.layers(base, {}, { collapsed: false }).addTo(map);
    L.control.scale().addTo(map);
    var b = info.bounds;
    map.fitBounds([[b[1], b[0]], [b[3], b[2]]]);
    map.on("click", function (e) {
      var ll = e.latlng.wrap();
      fetch("api/point?lon=" + ll.lng.toFixed(6) + "&lat=" + ll.lat.toFixed(6))
        .then(function (r) { return r.json(); })
        .then(function (p) {
          var html = p.date
            ? "<b>acquired " + p.date + "</b><br>scene " + (p.scene_id || p.scene) +
              "<br>clear observations: " + p.clear_count +
              "<br>R/G/B/NIR: " + [p.red, p.green, p.blue, p.nir].join(" / ")
            : (p.detail || "no data here");
          L.popup().setLatLng(e.latlng).setContent(html).openOn(map);
        });
    });
  }).catch(function (err) { status.textContent = "error: " + err; });
})();
