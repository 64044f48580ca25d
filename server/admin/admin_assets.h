// The admin page's files (server/admin/assets/), compiled into dtmd by a build step
// (embed_assets.cmake writes the table).
#ifndef DTM_SERVER_ADMIN_ADMIN_ASSETS_H_
#define DTM_SERVER_ADMIN_ADMIN_ASSETS_H_

#include <cstddef>

namespace dtm::admin_internal {

struct Asset {
  const char* name;  // "index.html", "app.js", ...: the path under assets/
  const unsigned char* data;
  size_t size;
};

extern const Asset kAssets[];
extern const size_t kAssetCount;

}  // namespace dtm::admin_internal

#endif  // DTM_SERVER_ADMIN_ADMIN_ASSETS_H_
