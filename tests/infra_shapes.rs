//! The network options of the deployment reach the resources they should: infra/'s Bicep is
//! evaluated for a parameter set (`scripts/infra-check.sh --render`, scripts/lib/bicep_shape.py)
//! and the resources it deploys are checked, for the committed parameter files and for the
//! parameters `scripts/deploy.sh` derives from its options.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn repo(path: &str) -> PathBuf {
    Path::new(REPO).join(path)
}

/// A fresh folder under cargo's per-test scratch directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("infra-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run_render(files: &[PathBuf]) -> Output {
    Command::new(repo("scripts/infra-check.sh"))
        .arg("--render")
        .args(files)
        .output()
        .expect("run scripts/infra-check.sh --render")
}

/// The shape a deployment with these parameter files (later ones overriding) creates.
fn render(files: &[PathBuf]) -> Value {
    let output = run_render(files);
    assert!(
        output.status.success(),
        "render failed: {}",
        text(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the shape is JSON")
}

/// A parameters file (the az CLI's format) with these values.
fn parameters_file(dir: &Path, name: &str, values: Value) -> PathBuf {
    let parameters: serde_json::Map<String, Value> = values
        .as_object()
        .expect("parameter values")
        .iter()
        .map(|(key, value)| (key.clone(), json!({ "value": value })))
        .collect();
    let path = dir.join(name);
    let document = json!({ "contentVersion": "1.0.0.0", "parameters": parameters });
    fs::write(&path, serde_json::to_vec_pretty(&document).unwrap()).unwrap();
    path
}

fn open_parameters() -> PathBuf {
    repo("infra/main.parameters.json")
}

fn resources(shape: &Value) -> &Vec<Value> {
    shape["resources"].as_array().expect("resources")
}

fn of_type<'a>(shape: &'a Value, kind: &str) -> Vec<&'a Value> {
    resources(shape)
        .iter()
        .filter(|resource| resource["type"] == kind)
        .collect()
}

fn named<'a>(shape: &'a Value, module: &str, name: &str) -> &'a Value {
    resources(shape)
        .iter()
        .find(|resource| resource["module"] == module && resource["name"] == name)
        .unwrap_or_else(|| panic!("no resource {module}/{name}"))
}

fn site(shape: &Value) -> &Value {
    &named(shape, "main/functionApp", "site")["config"]["properties"]
}

fn app_setting<'a>(site: &'a Value, name: &str) -> &'a Value {
    &site["siteConfig"]["appSettings"]
        .as_array()
        .expect("appSettings")
        .iter()
        .find(|setting| setting["name"] == name)
        .unwrap_or_else(|| panic!("no app setting {name}"))["value"]
}

const STORAGE_SERVICES: [(&str, &str); 4] = [
    ("blob", "[storage.outputs.dataAccountId]"),
    ("queue", "[storage.outputs.dataAccountId]"),
    ("table", "[storage.outputs.dataAccountId]"),
    ("file", "[storage.outputs.contentAccountId]"),
];

#[test]
fn the_open_shape_deploys_what_it_did_before_the_network_options() {
    let shape = render(&[open_parameters()]);
    // Rendered from the templates as they were before allowedIpRanges and privateNetworking
    // (plus the retention timer's schedule setting, added since): with both options off the
    // deployment must not change. A deliberate change to the open
    // shape regenerates the file:
    //   scripts/infra-check.sh --render infra/main.parameters.json | jq .resources
    let before: Value = serde_json::from_str(
        &fs::read_to_string(repo("tests/fixtures/infra/open-shape.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(shape["resources"], before);

    assert_eq!(shape["parameters"]["allowedIpRanges"], json!([]));
    assert_eq!(shape["parameters"]["privateNetworking"], json!(false));
    assert!(resources(&shape).iter().all(|resource| !resource["type"]
        .as_str()
        .unwrap()
        .starts_with("Microsoft.Network/")));
    let site = site(&shape);
    for absent in [
        "virtualNetworkSubnetId",
        "vnetRouteAllEnabled",
        "vnetContentShareEnabled",
    ] {
        assert!(site.get(absent).is_none(), "{absent} is set: {site}");
    }
    assert!(site["siteConfig"].get("ipSecurityRestrictions").is_none());
    assert!(site["siteConfig"]
        .get("scmIpSecurityRestrictions")
        .is_none());
}

#[test]
fn private_networking_closes_storage_and_routes_the_app_through_the_network() {
    let shape = render(&[
        open_parameters(),
        repo("infra/main.parameters.private.json"),
    ]);
    assert_eq!(shape["parameters"]["privateNetworking"], json!(true));

    // Both accounts refuse public networks.
    for account in ["data", "content"] {
        let properties = &named(&shape, "main/storage", account)["config"]["properties"];
        assert_eq!(properties["publicNetworkAccess"], "Disabled", "{account}");
        assert_eq!(
            properties["networkAcls"]["defaultAction"], "Deny",
            "{account}"
        );
    }

    // One network: a subnet delegated to the app's VNet integration, one for the endpoints.
    let networks = of_type(&shape, "Microsoft.Network/virtualNetworks");
    assert_eq!(networks.len(), 1);
    let vnet = &networks[0]["config"]["properties"];
    assert_eq!(
        vnet["addressSpace"]["addressPrefixes"],
        json!(["10.40.0.0/16"])
    );
    let subnets = vnet["subnets"].as_array().unwrap();
    assert_eq!(subnets.len(), 2);
    let integration = &subnets[0];
    assert_eq!(integration["name"], "snet-integration");
    assert_eq!(
        integration["properties"]["delegations"][0]["properties"]["serviceName"],
        "Microsoft.Web/serverFarms"
    );
    assert_eq!(subnets[1]["name"], "snet-private-endpoints");

    // A private endpoint for each service the app uses, in the endpoint subnet, with its DNS
    // zone, the zone's link to the network, and the zone group registering its address.
    let endpoints = of_type(&shape, "Microsoft.Network/privateEndpoints");
    let zones = of_type(&shape, "Microsoft.Network/privateDnsZones");
    let links = of_type(
        &shape,
        "Microsoft.Network/privateDnsZones/virtualNetworkLinks",
    );
    let groups = of_type(
        &shape,
        "Microsoft.Network/privateEndpoints/privateDnsZoneGroups",
    );
    for list in [&endpoints, &zones, &links, &groups] {
        assert_eq!(list.len(), STORAGE_SERVICES.len());
    }
    for (i, (service, account)) in STORAGE_SERVICES.iter().enumerate() {
        let endpoint = &endpoints[i]["config"]["properties"];
        let connection = &endpoint["privateLinkServiceConnections"][0]["properties"];
        assert_eq!(connection["privateLinkServiceId"], *account, "{service}");
        assert_eq!(connection["groupIds"], json!([service]));
        assert_eq!(
            endpoint["subnet"]["id"],
            "['${vnet.id}/subnets/snet-private-endpoints']"
        );
        assert_eq!(
            zones[i]["config"]["name"],
            format!("['privatelink.{service}.${{environment().suffixes.storage}}']")
        );
        assert_eq!(links[i]["config"]["parent"], format!("[zones[{i}]]"));
        assert_eq!(
            links[i]["config"]["properties"]["virtualNetwork"]["id"],
            "[vnet.id]"
        );
        assert_eq!(
            links[i]["config"]["properties"]["registrationEnabled"],
            false
        );
        assert_eq!(
            groups[i]["config"]["parent"],
            format!("[privateEndpoints[{i}]]")
        );
        assert_eq!(
            groups[i]["config"]["properties"]["privateDnsZoneConfigs"][0]["properties"]
                ["privateDnsZoneId"],
            format!("[zones[{i}].id]")
        );
    }

    // The app joins the integration subnet and reaches its content share over the network; the
    // share exists beforehand, as a closed account requires.
    let site = site(&shape);
    assert_eq!(
        site["virtualNetworkSubnetId"],
        "[privateNetwork.outputs.integrationSubnetId]"
    );
    assert_eq!(site["vnetRouteAllEnabled"], true);
    assert_eq!(site["vnetContentShareEnabled"], true);
    assert_eq!(
        site["siteConfig"]["functionsRuntimeScaleMonitoringEnabled"],
        true
    );
    let shares = of_type(
        &shape,
        "Microsoft.Storage/storageAccounts/fileServices/shares",
    );
    assert_eq!(shares.len(), 1);
    assert_eq!(
        shares[0]["config"]["name"],
        *app_setting(site, "WEBSITE_CONTENTSHARE")
    );
    // The allowlist is a separate option: private networking leaves inbound access as it was.
    assert!(site["siteConfig"].get("ipSecurityRestrictions").is_none());
}

fn allow_rule(name: &str, cidr: &str, priority: u64) -> Value {
    json!({ "name": name, "ipAddress": cidr, "action": "Allow", "priority": priority })
}

#[test]
fn the_allowlist_admits_only_its_ranges_to_the_app_and_the_scm_site() {
    let dir = scratch("allowlist");
    let ranges = json!([
        { "name": "office", "cidr": "203.0.113.0/24" },
        { "name": "ci", "cidr": "2001:db8::/48" },
    ]);
    let rules = json!([
        allow_rule("office", "203.0.113.0/24", 100),
        allow_rule("ci", "2001:db8::/48", 101),
    ]);
    let restricted = parameters_file(
        &dir,
        "restricted.json",
        json!({ "allowedIpRanges": ranges }),
    );
    let shape = render(&[open_parameters(), restricted]);
    let config = &site(&shape)["siteConfig"];
    assert_eq!(config["ipSecurityRestrictions"], rules);
    assert_eq!(config["ipSecurityRestrictionsDefaultAction"], "Deny");
    assert_eq!(config["scmIpSecurityRestrictionsUseMain"], false);
    assert_eq!(config["scmIpSecurityRestrictions"], rules);
    assert_eq!(config["scmIpSecurityRestrictionsDefaultAction"], "Deny");
    // The other settings stay as they were.
    assert_eq!(config["minTlsVersion"], "1.2");
    assert_eq!(config["ftpsState"], "Disabled");

    let scm_open = parameters_file(
        &dir,
        "scm-open.json",
        json!({ "allowedIpRanges": ranges, "scmSiteOpen": true }),
    );
    let shape = render(&[open_parameters(), scm_open]);
    let config = &site(&shape)["siteConfig"];
    assert_eq!(config["ipSecurityRestrictions"], rules);
    assert_eq!(config["ipSecurityRestrictionsDefaultAction"], "Deny");
    assert_eq!(config["scmIpSecurityRestrictions"], json!([]));
    assert_eq!(config["scmIpSecurityRestrictionsDefaultAction"], "Allow");
}

#[test]
fn parameters_the_templates_do_not_take_are_refused_by_name() {
    let dir = scratch("refused");
    for (values, expected) in [
        (
            json!({ "privateNetwork": true }),
            "main.bicep has no parameter 'privateNetwork'",
        ),
        (
            json!({ "privateNetworking": "yes" }),
            "parameter 'privateNetworking' is declared bool",
        ),
        (
            json!({ "allowedIpRanges": { "name": "office" } }),
            "parameter 'allowedIpRanges' is declared array",
        ),
        (
            json!({ "allowedIpRanges": [{ "cidr": "203.0.113.0/24" }] }),
            "the object {cidr: '203.0.113.0/24'} has no property 'name'",
        ),
        (
            json!({ "planSku": "EP9" }),
            "parameter 'planSku' = 'EP9' breaks @allowed",
        ),
    ] {
        let file = parameters_file(&dir, "bad.json", values.clone());
        let output = run_render(&[open_parameters(), file]);
        assert!(!output.status.success(), "{values} was accepted");
        assert!(
            text(&output.stderr).contains(expected),
            "{values}: {}",
            text(&output.stderr)
        );
    }
}

/// `scripts/deploy.sh --print-parameters` with these options, this machine's address served
/// from a file instead of the echo service.
fn deploy_parameters(options: &[&str], my_ip_file: &Path) -> Output {
    Command::new(repo("scripts/deploy.sh"))
        .args(options)
        .arg("--print-parameters")
        .env(
            "DEPLOY_MY_IP_URL",
            format!("file://{}", my_ip_file.display()),
        )
        .output()
        .expect("run scripts/deploy.sh")
}

#[test]
fn deploy_options_become_the_parameters_that_restrict_the_app() {
    let dir = scratch("deploy");
    let my_ip = dir.join("my-ip");
    fs::write(&my_ip, "198.51.100.7\n").unwrap();
    let output = deploy_parameters(
        &[
            "--allow-ip",
            "office=203.0.113.0/24",
            "--allow-ip",
            "192.0.2.5",
            "--allow-my-ip",
            "--private-networking",
        ],
        &my_ip,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let printed = text(&output.stdout);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(
        lines,
        [
            r#"allowedIpRanges=[{"name":"office","cidr":"203.0.113.0/24"},{"name":"range-2","cidr":"192.0.2.5/32"},{"name":"deployer","cidr":"198.51.100.7/32"}]"#,
            "privateNetworking=true",
        ]
    );

    // What the deployment would pass, as a parameters file: the ranges reach the site.
    let values: serde_json::Map<String, Value> = lines
        .iter()
        .map(|line| {
            let (name, value) = line.split_once('=').unwrap();
            (name.to_owned(), serde_json::from_str(value).unwrap())
        })
        .collect();
    let file = parameters_file(&dir, "from-deploy.json", Value::Object(values));
    let shape = render(&[open_parameters(), file]);
    let config = &site(&shape)["siteConfig"];
    assert_eq!(
        config["ipSecurityRestrictions"],
        json!([
            allow_rule("office", "203.0.113.0/24", 100),
            allow_rule("range-2", "192.0.2.5/32", 101),
            allow_rule("deployer", "198.51.100.7/32", 102),
        ])
    );
    assert_eq!(
        config["scmIpSecurityRestrictions"],
        config["ipSecurityRestrictions"]
    );
    assert_eq!(site(&shape)["vnetContentShareEnabled"], true);

    let output = deploy_parameters(&["--allow-ip", "10.0.0.0/16", "--open-scm"], &my_ip);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout)
        .lines()
        .any(|line| line == "scmSiteOpen=true"));
}

#[test]
fn deploy_refuses_ranges_that_are_not_addresses() {
    let dir = scratch("deploy-refused");
    let my_ip = dir.join("my-ip");
    for (options, expected) in [
        (
            vec!["--allow-ip", "300.1.1.1"],
            "'300.1.1.1' is not an IPv4 or IPv6",
        ),
        (
            vec!["--allow-ip", "10.0.0.0/33"],
            "'10.0.0.0/33' is not an IPv4 or IPv6",
        ),
        (
            vec!["--allow-ip", "office"],
            "'office' is not an IPv4 or IPv6",
        ),
        (
            vec!["--allow-ip", "my office=10.0.0.0/8"],
            "'my office' is not a rule name",
        ),
        (
            vec!["--open-scm"],
            "--open-scm applies only with --allow-ip",
        ),
    ] {
        let output = deploy_parameters(&options, &my_ip);
        assert_eq!(output.status.code(), Some(2), "{options:?}");
        assert!(
            text(&output.stderr).contains(expected),
            "{options:?}: {}",
            text(&output.stderr)
        );
    }
    // The echo service answering something that is not an address stops the deployment.
    fs::write(&my_ip, "<html>rate limited</html>").unwrap();
    let output = deploy_parameters(&["--allow-my-ip"], &my_ip);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("gave no address"),
        "{}",
        text(&output.stderr)
    );
}
