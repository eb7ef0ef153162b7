// Small enhancements; every page works without them.
document.addEventListener("input", (event) => {
  // Keep the context label in step with the slider while it moves.
  const slider = event.target.closest('input[type="range"][name="ctx"]');
  if (!slider) return;
  const out = slider.form && slider.form.querySelector("[data-ctx-out]");
  if (out) out.textContent = Number(slider.value).toLocaleString("en-US");
});

// The demo's running counter arrives as "N tokens · X tok/s"; say "1 token" for the first one.
document.addEventListener("htmx:sseMessage", (event) => {
  const live = event.target;
  if (live.matches && live.matches(".demo-live") && /^1 tokens\b/.test(live.textContent)) {
    live.textContent = live.textContent.replace(/^1 tokens\b/, "1 token");
  }
});
