// Small enhancements; every page works without them.
document.addEventListener("input", (event) => {
  // Keep the context label in step with the slider while it moves.
  const slider = event.target.closest('input[type="range"][name="ctx"]');
  if (!slider) return;
  const out = slider.form && slider.form.querySelector("[data-ctx-out]");
  if (out) out.textContent = Number(slider.value).toLocaleString("en-US");
});
