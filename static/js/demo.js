// The demo's run: when the stream is refused (busy, over this visitor's limits, a used link) the server answers a
// status code before any event, which an EventSource cannot read; htmx's SSE extension would then retry the same
// single-use link forever. Stop it and say what to do.
document.addEventListener("htmx:sseError", (event) => {
  const source = event.detail && event.detail.source;
  const run = event.target.closest && event.target.closest(".demo-run");
  if (!run || !source || source.readyState !== EventSource.CLOSED) return;
  source.close();
  const stopped = run.cloneNode(true); // the same text, without the SSE connection (a detached run is not retried)
  stopped.removeAttribute("sse-connect");
  stopped.removeAttribute("hx-ext");
  run.replaceWith(stopped);
  const status = stopped.querySelector(".demo-live-status");
  if (status) {
    status.textContent =
      "The run could not start or was cut off: the demo may be busy, or you already have a run going. " +
      "Wait a few seconds and press Generate again.";
    status.classList.add("demo-error");
  }
});
