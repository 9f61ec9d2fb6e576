"use strict";
WA.api("/api/auth/registration").then((info) => {
  if (info.open_to_first_user) document.getElementById("first-user").hidden = false;
}).catch(() => {});
