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
