// Every screen of the admin page: where it lives (`#/path`), its title, and
// the permission that shows it (null: every logged-in user, for screens
// over the user's own records). A screen is a component taking `{me}`.

import Counters from "./counters.js";
import Databases from "./databases.js";
import Keys from "./keys.js";
import Credentials from "./credentials.js";
import Users from "./users.js";
import Roles from "./roles.js";
import Access from "./access.js";

export const screens = [
  { path: "counters", title: "Counters", needs: "counters:read", component: Counters },
  { path: "databases", title: "Databases", needs: "databases:read", component: Databases },
  { path: "keys", title: "API keys", needs: null, component: Keys },
  { path: "credentials", title: "Credentials", needs: null, component: Credentials },
  { path: "users", title: "Users", needs: "users:read", component: Users },
  { path: "roles", title: "Roles", needs: "roles:read", component: Roles },
  { path: "access", title: "Access", needs: ["access:read", "access:check"], component: Access },
];
