// The admin page: a static page (HTML, CSS and plain JavaScript from server/admin/assets/,
// compiled into dtmd) that lists, shows and steers transactions through the JSON API of
// server/api/admin/ on the same HTTP port. It works offline: nothing is loaded from elsewhere.
//
// Routes: GET / (the page), GET /admin/<file> (its script, style sheet and icon). Every answer
// carries a Content-Security-Policy that allows only this origin's own scripts, styles and
// requests (no inline script, no framing), and is not to be sniffed as another type. The page
// itself holds no data, so it needs no token; the API it calls does.
#ifndef DTM_SERVER_ADMIN_ADMIN_PAGE_H_
#define DTM_SERVER_ADMIN_ADMIN_PAGE_H_

#include "server/http/http_server.h"

namespace dtm {

// Adds the page's routes to `router`.
void RegisterAdminPage(HttpRouter* router);

}  // namespace dtm

#endif  // DTM_SERVER_ADMIN_ADMIN_PAGE_H_
