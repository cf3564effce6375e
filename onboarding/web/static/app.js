// Progressive enhancement only: every page works without this file.
// Filter forms marked data-autosubmit submit as soon as a choice changes.
document.addEventListener("change", function (event) {
  var form = event.target.form;
  if (form && form.hasAttribute("data-autosubmit") && event.target.tagName === "SELECT") {
    form.submit();
  }
});
// A button is disabled once its form is sent, so a double click does not post twice.
document.addEventListener("submit", function (event) {
  var button = event.target.querySelector("button:not(.link)");
  if (button) {
    setTimeout(function () { button.disabled = true; }, 0);
  }
});
// The header's menu folds behind a button at narrow widths (style.css): only when this file
// runs, so without JavaScript the menu is simply always there.
document.documentElement.classList.add("js");
document.addEventListener("click", function (event) {
  var toggle = event.target.closest ? event.target.closest(".menu-toggle") : null;
  if (!toggle) {
    return;
  }
  var header = toggle.closest("header");
  var open = header.classList.toggle("open");
  toggle.setAttribute("aria-expanded", open ? "true" : "false");
});
// Escape closes an open menu and gives the focus back to its button.
document.addEventListener("keydown", function (event) {
  var header = document.querySelector("header.top.open");
  if (event.key === "Escape" && header) {
    header.classList.remove("open");
    var toggle = header.querySelector(".menu-toggle");
    toggle.setAttribute("aria-expanded", "false");
    toggle.focus();
  }
});
