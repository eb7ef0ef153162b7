/* "Detect my hardware": enhances every button[data-detect-hardware].
 *
 * Reads the GPU name the browser exposes (WebGPU adapter info, else WebGL's unmasked renderer) and
 * navigator.deviceMemory, asks this site's /api/probe/match which catalog device it is, then preselects it in the
 * nearest form's select[name=hardware] and fires `change` (htmx listens for it). With data-detect-navigate on the
 * button it opens that device's page instead. Nothing leaves the browser except that one query to this site.
 * Plain JS, no framework.
 */
(function () {
  "use strict";

  var MATCH_URL = "/api/probe/match";

  function readWebGL() {
    try {
      var canvas = document.createElement("canvas");
      var gl = canvas.getContext("webgl2") || canvas.getContext("webgl") || canvas.getContext("experimental-webgl");
      if (!gl) return null;
      var ext = gl.getExtension("WEBGL_debug_renderer_info");
      // Firefox 92+ reports the (rounded) unmasked renderer through RENDERER and deprecates the extension.
      var renderer = ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
      var vendor = ext ? gl.getParameter(ext.UNMASKED_VENDOR_WEBGL) : gl.getParameter(gl.VENDOR);
      var lose = gl.getExtension("WEBGL_lose_context");
      if (lose) lose.loseContext();
      return renderer ? { renderer: String(renderer), vendor: String(vendor || ""), source: "WebGL" } : null;
    } catch (e) {
      return null;
    }
  }

  function readWebGPU() {
    if (!navigator.gpu || !navigator.gpu.requestAdapter) return Promise.resolve(null);
    return navigator.gpu.requestAdapter().then(function (adapter) {
      if (!adapter) return null;
      if (adapter.info) return adapter.info;
      // Older Chrome (before 127) only had requestAdapterInfo().
      return adapter.requestAdapterInfo ? adapter.requestAdapterInfo() : null;
    }).then(function (info) {
      if (!info) return null;
      return { renderer: String(info.description || ""), vendor: String(info.vendor || ""), source: "WebGPU" };
    }).catch(function () {
      return null;
    });
  }

  /* The best name the browser gives: WebGPU's description when filled in (often empty for privacy), else WebGL. */
  function readDevice() {
    return readWebGPU().then(function (gpu) {
      if (gpu && gpu.renderer) return gpu;
      var gl = readWebGL();
      if (gl && !gl.vendor && gpu) gl.vendor = gpu.vendor;
      return gl || gpu;
    });
  }

  function outputFor(button) {
    var next = button.nextElementSibling;
    if (next && next.classList.contains("detect-result")) return next;
    var output = document.createElement("output");
    output.className = "detect-result";
    output.setAttribute("aria-live", "polite");
    button.insertAdjacentElement("afterend", output);
    return output;
  }

  function selectFor(button) {
    var scope = button.closest("form") || button.parentElement;
    return scope ? scope.querySelector("select[name=hardware]") : null;
  }

  function choose(select, match) {
    var option = Array.prototype.find.call(select.options, function (o) { return o.value === match.slug; });
    if (!option) {
      // The picker lists popular devices only: add the detected one.
      option = new Option(match.name, match.slug);
      select.add(option);
    }
    select.value = match.slug;
    select.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function detect(button) {
    var output = outputFor(button);
    var memory = navigator.deviceMemory; // GiB of RAM, rounded down to a power of two and capped at 8
    output.textContent = "Detecting…";
    button.disabled = true;
    return readDevice().then(function (device) {
      if (!device || !device.renderer) {
        output.textContent = "Your browser does not say which GPU it has; choose it from the list.";
        return;
      }
      var params = new URLSearchParams({ renderer: device.renderer.slice(0, 300), vendor: device.vendor.slice(0, 100) });
      // RAM is the GPU's memory only on unified-memory machines, and only below the cap is it an exact figure.
      var unified = /apple/i.test(device.renderer + " " + device.vendor);
      if (unified && memory && memory < 8) params.set("memory_gb", String(memory));
      var ram = memory ? " · " + (memory >= 8 ? "at least 8" : String(memory)) + " GB RAM" : "";
      return fetch(MATCH_URL + "?" + params.toString(), { headers: { Accept: "application/json" } })
        .then(function (response) {
          return response.json().then(function (body) { return { ok: response.ok, body: body }; });
        })
        .then(function (result) {
          if (!result.ok) {
            output.textContent = "Detected: " + device.renderer + " (" + device.source + ram + "). " +
              (result.body.message || "No match in the catalog.");
            return;
          }
          var match = result.body;
          output.textContent = "Detected: " + match.name + " (" + device.source + " reports “" + match.detected + "”" +
            ram + ") — change it if wrong";
          output.dataset.slug = match.slug;
          if (button.hasAttribute("data-detect-navigate")) {
            window.location.assign(match.url);
            return;
          }
          var select = selectFor(button);
          if (select) choose(select, match);
        });
    }).catch(function () {
      output.textContent = "Detection failed; choose your device from the list.";
    }).then(function () {
      button.disabled = false;
    });
  }

  function enhance(root) {
    var buttons = (root || document).querySelectorAll("button[data-detect-hardware]:not([data-detect-ready])");
    Array.prototype.forEach.call(buttons, function (button) {
      button.setAttribute("data-detect-ready", "");
      // The button is rendered hidden: without this script it could do nothing.
      button.hidden = false;
      button.addEventListener("click", function () { detect(button); });
    });
  }

  window.rigfitDetect = { enhance: enhance, readDevice: readDevice };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { enhance(document); });
  } else {
    enhance(document);
  }
  // Buttons inside fragments htmx swaps in later.
  document.addEventListener("htmx:load", function (event) { enhance(event.target); });
})();
