// s2cube web map: one XYZ layer per served layer (the 10 m mosaic's and, when the store has
// them, the super-resolution products'), a layer switcher, provenance on click,
// a metric scale bar, a legend for the provenance layer and a permalink: the view and the
// layer live in the URL hash (#zoom/lat/lon/layer), so a copied URL reopens the same map.
// Everything is fetched relative to this page, so it works behind any base path.
(function () {
  "use strict";
  var status = document.getElementById("status");
  var map = L.map("map", { worldCopyJump: true });
  window.s2cubeMap = map;

  // viridis (matplotlib), the ramp the provenance tiles use: oldest dark blue, newest yellow
  var VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e",
                 "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"];

  function parseHash() {
    var parts = window.location.hash.replace(/^#/, "").split("/");
    if (parts.length < 3) { return null; }
    var z = parseInt(parts[0], 10), lat = parseFloat(parts[1]), lon = parseFloat(parts[2]);
    if (!isFinite(z) || !isFinite(lat) || !isFinite(lon)) { return null; }
    return { zoom: z, center: [lat, lon], layer: parts[3] ? decodeURIComponent(parts[3]) : null };
  }

  fetch("api/info").then(function (r) { return r.json(); }).then(function (info) {
    // each layer at its own native zoom (a super-resolution layer goes finer than the mosaic),
    // enlarged by the browser beyond it; the map zooms 3 levels past the finest layer
    function nativeZoom(id) {
      var mz = info.layers[id].maxzoom;
      return mz ? mz.WebMercatorQuad : info.tile_matrix_sets.WebMercatorQuad.maxzoom;
    }
    var maxNative = Math.max.apply(null, Object.keys(info.layers).map(nativeZoom));
    var base = {};
    var byId = {};
    var idOf = {};
    var current = null;
    Object.keys(info.layers).forEach(function (id) {
      var layer = L.tileLayer("tiles/" + id + "/{z}/{x}/{y}.png", {
        maxNativeZoom: nativeZoom(id), maxZoom: maxNative + 3, minZoom: 0,
        attribution: info.attribution +
          ' · <a href="https://github.com/s2cube/s2cube">s2cube</a>',  // + Leaflet's own prefix
      });
      layer.on("load", function () {
        status.firstChild.textContent =
          "tiles loaded · " + info.date_range[0] + " – " + info.date_range[1] + " · ";
        document.body.setAttribute("data-tiles-loaded", "1");
      });
      base[info.layers[id].title] = layer;
      byId[id] = layer;
      idOf[L.stamp(layer)] = id;
    });

    // legend of the provenance layer: the date ramp from the store's first to last date
    var legend = L.control({ position: "bottomright" });
    legend.onAdd = function () {
      var div = L.DomUtil.create("div", "s2cube-legend");
      div.id = "legend";
      div.innerHTML =
        "<b>Acquisition date</b>" +
        '<div class="ramp" style="background:linear-gradient(to right,' +
        VIRIDIS.join(",") + ')"></div>' +
        '<div class="ends"><span>' + info.date_range[0] + "</span><span>" +
        info.date_range[1] + "</span></div>" +
        '<div class="note">transparent: no clear observation</div>';
      return div;
    };

    // legend of the land-cover layer: one swatch per class of the store's palette
    var lcLegend = L.control({ position: "bottomright" });
    lcLegend.onAdd = function () {
      var div = L.DomUtil.create("div", "s2cube-legend");
      div.id = "legend-landcover";
      var rows = Object.keys(info.landcover || {}).map(function (code) {
        var c = info.landcover[code];
        return '<div class="class"><span class="swatch" style="background:' + c.color +
          '"></span>' + c.name + (c.name === "built" ? " (not split)" : "") + "</div>";
      });
      div.innerHTML = "<b>Land cover</b>" + rows.join("") +
        '<div class="note">transparent: no clear date</div>';
      return div;
    };

    var permalink = document.getElementById("permalink");
    function updateHash() {
      if (!current) { return; }
      var c = map.getCenter().wrap();
      var hash = "#" + map.getZoom() + "/" + c.lat.toFixed(5) + "/" + c.lng.toFixed(5) +
        "/" + encodeURIComponent(current);
      window.history.replaceState(null, "", hash);
      permalink.setAttribute("href", hash);
    }
    function select(id) {
      current = id;
      if (id === "provenance") { legend.addTo(map); } else { legend.remove(); }
      if (id === "landcover") { lcLegend.addTo(map); } else { lcLegend.remove(); }
      updateHash();
    }

    var wanted = parseHash();
    var start = wanted && byId[wanted.layer] ? wanted.layer : Object.keys(byId)[0];
    byId[start].addTo(map);
    L.control.layers(base, {}, { collapsed: false }).addTo(map);
    L.control.scale({ metric: true, imperial: false, maxWidth: 150 }).addTo(map);
    map.on("baselayerchange", function (e) { select(idOf[L.stamp(e.layer)]); });
    map.on("moveend", updateHash);
    if (wanted) {
      map.setView(wanted.center, wanted.zoom);
    } else {
      var b = info.bounds;
      map.fitBounds([[b[1], b[0]], [b[3], b[2]]]);
    }
    select(start);
    window.addEventListener("hashchange", function () {
      var w = parseHash();
      if (!w) { return; }
      map.setView(w.center, w.zoom);
      if (w.layer && byId[w.layer] && w.layer !== current) {
        map.removeLayer(byId[current]);
        byId[w.layer].addTo(map);
        select(w.layer);
      }
    });

    map.on("click", function (e) {
      var ll = e.latlng.wrap();
      // a super-resolution layer answers with its own (finer) pixel
      var sr = info.superres && info.superres[current] ? "&layer=" + current : "";
      fetch("api/point?lon=" + ll.lng.toFixed(6) + "&lat=" + ll.lat.toFixed(6) + sr)
        .then(function (r) { return r.json(); })
        .then(function (p) {
          var fill = p.fill_meaning
            ? "<br>fill: " + p.fill + " (" + p.fill_meaning.replace(/_/g, " ") + ")" : "";
          var html = p.date
            ? "<b>acquired " + p.date + "</b><br>scene " + (p.scene_id || p.scene) +
              "<br>clear observations: " + p.clear_count + fill +
              "<br>R/G/B/NIR: " + [p.red, p.green, p.blue, p.nir].join(" / ")
            : p.fill === 3
            ? "<b>inpainted</b>: no observation, a guess from the neighbourhood" + fill +
              "<br>R/G/B/NIR: " + [p.red, p.green, p.blue, p.nir].join(" / ")
            : (p.detail || "no data here");
          L.popup().setLatLng(e.latlng).setContent(html).openOn(map);
        });
    });
  }).catch(function (err) { status.firstChild.textContent = "error: " + err; });
})();
