#pragma once

// The OpenAPI (Swagger 2.0) document of drgate's HTTP/JSON routes: made from drgate.proto's
// google.api.http annotations by protoc-gen-swagger when drgate is built (proto/CMakeLists.txt),
// with drgate's title and version, and compiled into drgate (the generated
// openapi_document.cc). docs/openapi.json is the same document, checked in.

#include <string_view>

namespace drgate::plugin {

// The document as JSON text; valid for the whole program.
std::string_view OpenApiDocument();

}  // namespace drgate::plugin
