#include "server/admin/admin_page.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/admin/admin_assets.h"

namespace dtm {
namespace {

constexpr char kCsp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const char* ContentType(const std::string& name) {
  if (absl::EndsWith(name, ".html")) return "text/html; charset=utf-8";
  if (absl::EndsWith(name, ".js")) return "text/javascript; charset=utf-8";
  if (absl::EndsWith(name, ".css")) return "text/css; charset=utf-8";
  if (absl::EndsWith(name, ".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

HttpResponse AssetResponse(const admin_internal::Asset& a) {
  HttpResponse r;
  r.content_type = ContentType(a.name);
  r.body.assign(reinterpret_cast<const char*>(a.data), a.size);
  r.headers = {
      {"Content-Security-Policy", kCsp},
      {"X-Content-Type-Options", "nosniff"},
      {"X-Frame-Options", "DENY"},
      {"Referrer-Policy", "same-origin"},
      // Revalidated on every load: a new dtmd serves its own page, never a cached older one.
      {"Cache-Control", "no-cache"},
  };
  return r;
}

}  // namespace

void RegisterAdminPage(HttpRouter* router) {
  for (size_t i = 0; i < admin_internal::kAssetCount; ++i) {
    const admin_internal::Asset& a = admin_internal::kAssets[i];
    const std::string name = a.name;
    HttpHandler serve = [response = AssetResponse(a)](const HttpRequest&,
                                                      const HttpResponder& respond) {
      respond(response);
    };
    router->Handle("GET", absl::StrCat("/admin/", name), serve);
    if (name == "index.html") router->Handle("GET", "/", serve);
  }
}

}  // namespace dtm
